// Stands in for the platform (Lambda's runtime client, `netlify dev`, …): loads the handler, invokes it once
// with a checkout event, and prints the response as one JSON line. Run it as
//   node --import perimeter/register invoke.mjs     (guarded by ./perimeter.json)
//   node invoke.mjs                                 (unguarded)
import { handler } from './checkout.mjs';

const event = {
  httpMethod: 'POST',
  path: '/checkout',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ id: 'A-1001', amount: 4200, currency: 'eur', source: 'tok_visa' }),
};

const response = await handler(event);
console.log(JSON.stringify(response));
