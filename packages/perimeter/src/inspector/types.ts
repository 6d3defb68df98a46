/** Public types of the event inspector (`perimeter/inspector`). */

export type AttackClass =
  | 'sqli'
  | 'nosqli'
  | 'cmdi'
  | 'traversal'
  | 'ssrf'
  | 'prototype-pollution'
  | 'xss'
  | 'template'
  /** Not an attack class: a field too large or too deeply nested to scan within the bounds. Reported, not scanned. */
  | 'oversize';

export type Trigger =
  | 'apigateway-v1'
  | 'apigateway-v2'
  | 'function-url'
  | 'alb'
  /** Netlify Functions v1: the API Gateway v1 shape plus `rawUrl` and `rawQuery`. */
  | 'netlify-v1'
  | 'sqs'
  | 'sns'
  | 's3'
  | 'eventbridge'
  | 'dynamodb'
  | 'kinesis'
  /** A Fetch `Request` (Netlify Functions v2, any Fetch-API runtime): URL, headers, and the body given as `body`. */
  | 'fetch-request'
  /** An Express-style request (Google Cloud Functions HTTP): url, query, headers and the already parsed body. */
  | 'gcf-http'
  /** A CloudEvent (Cloud Functions 2nd gen event triggers, Eventarc): `data` or `data_base64`, `subject`. */
  | 'cloudevent'
  | 'generic';

/**
 * high: the value has the grammar of the attack (a quote breakout followed by SQL, a lookup that Log4j resolves);
 * medium: a strong indicator that is rarely benign (an absolute path to /etc/passwd);
 * low: attack syntax in a context that is often benign (a shell command inside a Markdown code span in prose).
 * Blocking should act on medium and high.
 */
export type Confidence = 'high' | 'medium' | 'low';

export interface Attack {
  class: AttackClass;
  /** Where in the event, e.g. `queryStringParameters.id`, `body.user.$ne` (keys), `Records[0].body`. */
  path: string;
  /** The matched text (after decoding), at most ~100 characters around the match. */
  fragment: string;
  confidence: Confidence;
}

export interface InspectionResult {
  trigger: Trigger;
  attacks: Attack[];
  /** Set when inspection could not finish (an internal error, a hostile getter on the event): fail closed on it. */
  error?: string;
}

export interface InspectOptions {
  /** Overrides trigger recognition from the event's shape. */
  trigger?: Trigger;
  /** Strings longer than this (in UTF-16 units) are reported as `oversize` and not scanned. Default 131072. */
  maxFieldLength?: number;
  /** Object/array nesting deeper than this is reported as `oversize` and not walked. Default 64. */
  maxDepth?: number;
  /** At most this many fields are scanned per event; the rest is reported as `oversize`. Default 10000. */
  maxFields?: number;
  /**
   * The body of a `fetch-request` event, read by the caller beforehand (`await request.clone().text()`): reading a
   * Request's body is asynchronous and inspectEvent() is not.
   */
  body?: string;
}

/** A detector's verdict on one decoded string. */
export interface Hit {
  fragment: string;
  confidence: Confidence;
}
