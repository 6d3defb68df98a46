// The payment provider's webhooks arrive through an SQS queue: each record is one event. Records that cannot be
// processed are returned in batchItemFailures (Lambda's partial batch response), so only they go back to the
// queue for a retry instead of the whole batch.
import { createLogger } from 'log-beacon';

const log = createLogger('webhook');
const HANDLED = new Set(['charge.succeeded', 'charge.refunded', 'charge.failed']);

export async function handler(event) {
  const failures = [];
  for (const record of event?.Records ?? []) {
    try {
      const message = JSON.parse(record.body);
      if (!HANDLED.has(message.type)) throw new Error(`unknown event type ${JSON.stringify(message.type)}`);
      if (typeof message.data?.order !== 'string') throw new Error('no order id');
      log.info('webhook processed', { type: message.type, order: message.data.order, messageId: record.messageId });
    } catch (error) {
      log.warn('webhook rejected', { messageId: record.messageId, error: error.message });
      failures.push({ itemIdentifier: record.messageId });
    }
  }
  return { batchItemFailures: failures };
}
