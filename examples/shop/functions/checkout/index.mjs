// POST /api/checkout: charges the order's card through pay-client, logs through log-beacon. A plain Lambda
// handler (API Gateway v2 event in, { statusCode, body } out): nothing in it knows about Perimeter, which
// `perimeter dev` (and, deployed, `--import perimeter/register`) adds from outside.
import { createLogger } from 'log-beacon';
import { createPayments } from 'pay-client';

const log = createLogger('checkout');
const payments = createPayments({
  apiKey: process.env.STRIPE_API_KEY,
  baseUrl: process.env.STRIPE_API_BASE ?? 'https://api.stripe.com',
});

export async function handler(event, context) {
  const order = parseBody(event);
  if (!order || !Number.isInteger(order.amount) || order.amount <= 0) {
    return json(400, { error: 'expected a JSON body with amount, a positive integer (cents)' });
  }
  log.info('charging', { order: order.id, amount: order.amount, request: context?.awsRequestId });
  try {
    const charge = await payments.charge({
      amount: order.amount,
      currency: order.currency ?? 'eur',
      source: order.source ?? 'tok_visa',
      description: `order ${order.id ?? 'unknown'}`,
    });
    log.info('charged', { order: order.id, charge: charge.id });
    return json(200, { order: order.id, charged: charge.id, status: charge.status });
  } catch (error) {
    log.error('charge failed', { order: order.id, error: error.message });
    return json(502, { order: order.id, error: error.message });
  }
}

function parseBody(event) {
  try {
    const raw = event?.isBase64Encoded ? Buffer.from(event.body ?? '', 'base64').toString('utf8') : event?.body;
    return JSON.parse(raw || 'null');
  } catch {
    return null;
  }
}

function json(statusCode, body) {
  return { statusCode, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}
