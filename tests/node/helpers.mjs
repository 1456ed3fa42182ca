// Shared set-up for the Node SDK tests: one client for the server named by ASSISTD_BASE_URL / ASSISTD_API_KEY.
import OpenAI from 'openai';

export const BASE_URL = process.env.ASSISTD_BASE_URL;
export const API_KEY = process.env.ASSISTD_API_KEY;
if (!BASE_URL || !API_KEY) {
  throw new Error('set ASSISTD_BASE_URL (e.g. http://127.0.0.1:8000/v1) and ASSISTD_API_KEY');
}

// The bundled tiny CPU model; do not depend on aliases such as gpt-4o.
export const MODEL = 'smollm2-135m-instruct';

// Per-test timeout: runs on the 135M model take a few seconds on 2 cores; leave room for a loaded machine.
export const TIMEOUT = 90_000;

export function makeClient(apiKey = API_KEY) {
  return new OpenAI({ baseURL: BASE_URL, apiKey, maxRetries: 0, timeout: 60_000 });
}

export const client = makeClient();

export const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string' } },
      required: ['city'],
      additionalProperties: false,
    },
  },
};

/** The text of a message's first content part (asserting it is text). */
export function textOf(message) {
  const part = message.content[0];
  if (!part || part.type !== 'text') throw new Error(`message ${message.id} has no text part: ${JSON.stringify(message.content)}`);
  return part.text.value;
}

/** A unique tag for this process, to find the objects one test made among everything else in the project. */
export function tag(name) {
  return `${name}-${process.pid}-${Date.now()}`;
}
