// A checkout function, written the way a Lambda handler is: `handler(event)` receives an API Gateway style
// event and returns { statusCode, body }. It charges a card through its dependency charge-kit.
import { createClient } from 'charge-kit';

const payments = createClient({
  apiKey: process.env.STRIPE_API_KEY,
  // stripe-mock, the Stripe CLI and this demo all stand in for the real API through a base URL.
  baseUrl: process.env.STRIPE_API_BASE ?? 'https://api.stripe.com',
});

export async function handler(event) {
  const order = JSON.parse(event.body ?? '{}');
  if (!Number.isInteger(order.amount) || order.amount <= 0) {
    return { statusCode: 400, body: JSON.stringify({ error: 'amount must be a positive integer (cents)' }) };
  }
  try {
    const charge = await payments.charge({
      amount: order.amount,
      currency: order.currency ?? 'eur',
      source: order.source ?? 'tok_visa',
      description: `order ${order.id ?? 'unknown'}`,
    });
    return { statusCode: 200, body: JSON.stringify({ charged: charge.id, status: charge.status }) };
  } catch (error) {
    return { statusCode: 502, body: JSON.stringify({ error: error.message, code: error.code }) };
  }
}
