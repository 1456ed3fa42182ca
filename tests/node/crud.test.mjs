// Assistants, threads and messages: the CRUD surface through the official TypeScript SDK.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { client, MODEL, TIMEOUT, WEATHER_TOOL, textOf, tag } from './helpers.mjs';

test('assistants: create, retrieve, update, list, delete', { timeout: TIMEOUT }, async () => {
  const name = tag('crud');
  const created = await client.beta.assistants.create({
    model: MODEL,
    name,
    description: 'made by the node tests',
    instructions: 'Be brief.',
    tools: [WEATHER_TOOL],
    metadata: { suite: 'node' },
    temperature: 0.5,
    top_p: 0.9,
  });
  assert.match(created.id, /^asst_/);
  assert.equal(created.object, 'assistant');
  assert.equal(created.model, MODEL);
  assert.equal(created.name, name);
  assert.equal(created.instructions, 'Be brief.');
  assert.deepEqual(created.metadata, { suite: 'node' });
  assert.equal(created.temperature, 0.5);
  assert.equal(created.top_p, 0.9);
  assert.equal(typeof created.created_at, 'number');
  assert.equal(created.tools.length, 1);
  assert.equal(created.tools[0].type, 'function');
  assert.equal(created.tools[0].function.name, 'get_weather');
  assert.deepEqual(created.tools[0].function.parameters, WEATHER_TOOL.function.parameters);

  const retrieved = await client.beta.assistants.retrieve(created.id);
  assert.deepEqual(retrieved, created);

  const updated = await client.beta.assistants.update(created.id, {
    name: `${name}-renamed`,
    metadata: { suite: 'node', step: 'updated' },
    tools: [],
  });
  assert.equal(updated.id, created.id);
  assert.equal(updated.name, `${name}-renamed`);
  assert.deepEqual(updated.metadata, { suite: 'node', step: 'updated' });
  assert.deepEqual(updated.tools, []);
  assert.equal(updated.instructions, 'Be brief.', 'fields not sent are kept');
  assert.equal((await client.beta.assistants.retrieve(created.id)).name, `${name}-renamed`);

  const page = await client.beta.assistants.list({ limit: 100 });
  assert.ok(page.data.some((a) => a.id === created.id), 'the new assistant is listed');

  const deleted = await client.beta.assistants.delete(created.id);
  assert.deepEqual(deleted, { id: created.id, object: 'assistant.deleted', deleted: true });
  await assert.rejects(client.beta.assistants.retrieve(created.id), OpenAI.NotFoundError);
});

test('threads and messages: create, retrieve, list, update, delete', { timeout: TIMEOUT }, async () => {
  const thread = await client.beta.threads.create({
    messages: [{ role: 'user', content: 'First message', metadata: { n: '1' } }],
    metadata: { suite: 'node' },
  });
  assert.match(thread.id, /^thread_/);
  assert.equal(thread.object, 'thread');
  assert.deepEqual(thread.metadata, { suite: 'node' });
  assert.deepEqual(await client.beta.threads.retrieve(thread.id), thread);

  const second = await client.beta.threads.messages.create(thread.id, { role: 'user', content: 'Second message' });
  assert.match(second.id, /^msg_/);
  assert.equal(second.object, 'thread.message');
  assert.equal(second.thread_id, thread.id);
  assert.equal(second.role, 'user');
  assert.equal(textOf(second), 'Second message');
  assert.deepEqual(second.content[0].text.annotations, []);

  const third = await client.beta.threads.messages.create(thread.id, {
    role: 'user',
    content: [{ type: 'text', text: 'Third message' }],
  });
  assert.equal(textOf(third), 'Third message');

  const asc = await client.beta.threads.messages.list(thread.id, { order: 'asc' });
  assert.deepEqual(asc.data.map(textOf), ['First message', 'Second message', 'Third message']);
  assert.deepEqual(asc.data[0].metadata, { n: '1' });
  const desc = await client.beta.threads.messages.list(thread.id);
  assert.deepEqual(desc.data.map((m) => m.id), asc.data.map((m) => m.id).reverse(), 'default order is desc');
  const firstPage = await client.beta.threads.messages.list(thread.id, { order: 'asc', limit: 1 });
  assert.equal(firstPage.data.length, 1);
  assert.ok(firstPage.hasNextPage());
  const nextPage = await firstPage.getNextPage();
  assert.equal(textOf(nextPage.data[0]), 'Second message');

  assert.deepEqual(await client.beta.threads.messages.retrieve(second.id, { thread_id: thread.id }), second);
  const modified = await client.beta.threads.messages.update(second.id, { thread_id: thread.id, metadata: { k: 'v' } });
  assert.deepEqual(modified.metadata, { k: 'v' });
  const deletedMessage = await client.beta.threads.messages.delete(third.id, { thread_id: thread.id });
  assert.equal(deletedMessage.deleted, true);
  assert.equal((await client.beta.threads.messages.list(thread.id)).data.length, 2);

  const updated = await client.beta.threads.update(thread.id, { metadata: { suite: 'node', done: 'yes' } });
  assert.deepEqual(updated.metadata, { suite: 'node', done: 'yes' });
  const deleted = await client.beta.threads.delete(thread.id);
  assert.deepEqual(deleted, { id: thread.id, object: 'thread.deleted', deleted: true });
  await assert.rejects(client.beta.threads.retrieve(thread.id), OpenAI.NotFoundError);
});
