// Auto-pagination over cursor pages, and the SDK's typed errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { client, makeClient, MODEL, TIMEOUT, tag } from './helpers.mjs';

test('for await over assistants.list({limit: 2}) sees every assistant once, newest first', { timeout: TIMEOUT }, async () => {
  const name = tag('page');
  const made = [];
  for (let i = 0; i < 5; i += 1) {
    // one at a time, so that created order is the list order
    made.push((await client.beta.assistants.create({ model: MODEL, name: `${name}-${i}` })).id);
  }
  const firstPage = await client.beta.assistants.list({ limit: 2 });
  assert.equal(firstPage.data.length, 2);
  assert.ok(firstPage.hasNextPage());

  const seen = [];
  for await (const a of client.beta.assistants.list({ limit: 2 })) seen.push(a.id);
  assert.equal(new Set(seen).size, seen.length, 'no assistant twice');
  const ours = seen.filter((id) => made.includes(id));
  assert.deepEqual(ours, [...made].reverse(), 'all five, in descending creation order');

  const ascending = [];
  for await (const a of client.beta.assistants.list({ limit: 2, order: 'asc', after: made[0] })) {
    if (made.includes(a.id)) ascending.push(a.id);
  }
  assert.deepEqual(ascending, made.slice(1), 'asc pages start after the cursor');

  await Promise.all(made.map((id) => client.beta.assistants.delete(id)));
});

test('a missing assistant throws NotFoundError (404)', { timeout: TIMEOUT }, async () => {
  await assert.rejects(client.beta.assistants.retrieve('asst_doesnotexist000000000000'), (err) => {
    assert.ok(err instanceof OpenAI.NotFoundError, `${err?.constructor?.name}: ${err?.message}`);
    assert.ok(err instanceof OpenAI.APIError);
    assert.equal(err.status, 404);
    assert.equal(typeof err.error?.message, 'string');
    assert.ok(err.message.includes('404'));
    assert.match(err.requestID ?? '', /^req_/);
    return true;
  });
});

test('a bad parameter throws BadRequestError with .param', { timeout: TIMEOUT }, async () => {
  await assert.rejects(client.beta.assistants.create({ model: MODEL, temperature: 5 }), (err) => {
    assert.ok(err instanceof OpenAI.BadRequestError, `${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.status, 400);
    assert.equal(err.param, 'temperature');
    assert.equal(err.type, 'invalid_request_error');
    return true;
  });
  await assert.rejects(
    client.beta.threads.runs.create('thread_doesnotexist', { assistant_id: 'asst_doesnotexist' }),
    OpenAI.NotFoundError,
  );
});

test('a wrong API key throws AuthenticationError (401)', { timeout: TIMEOUT }, async () => {
  const wrong = makeClient('sk-not-a-real-key');
  await assert.rejects(wrong.beta.assistants.list(), (err) => {
    assert.ok(err instanceof OpenAI.AuthenticationError, `${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.status, 401);
    return true;
  });
  await assert.rejects(wrong.models.list(), OpenAI.AuthenticationError);
});
