// Vector stores: fileBatches.uploadAndPoll with files made in-process, then search.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toFile } from 'openai';
import { client, TIMEOUT, tag } from './helpers.mjs';

const FILES = {
  'zephyr.txt': 'The launch code for Project Zephyr is 7-4-1-9, chosen by Dana Okafor.\n',
  'fruit.txt': 'Bananas are a yellow fruit rich in potassium. Apples grow in orchards in cool climates.\n',
};

test('fileBatches.uploadAndPoll ingests two files, search finds the one that answers', { timeout: TIMEOUT }, async () => {
  const store = await client.vectorStores.create({ name: tag('node-store') });
  assert.match(store.id, /^vs_/);
  const files = await Promise.all(
    Object.entries(FILES).map(([name, text]) => toFile(Buffer.from(text, 'utf8'), name, { type: 'text/plain' })),
  );
  const batch = await client.vectorStores.fileBatches.uploadAndPoll(store.id, { files }, { pollIntervalMs: 100 });
  assert.match(batch.id, /^vsfb_/);
  assert.equal(batch.object, 'vector_store.files_batch');
  assert.equal(batch.vector_store_id, store.id);
  assert.equal(batch.status, 'completed');
  assert.deepEqual(batch.file_counts, { in_progress: 0, completed: 2, failed: 0, cancelled: 0, total: 2 });

  const batchFiles = [];
  for await (const f of client.vectorStores.fileBatches.listFiles(batch.id, { vector_store_id: store.id })) {
    batchFiles.push(f);
  }
  assert.equal(batchFiles.length, 2);
  assert.ok(batchFiles.every((f) => f.status === 'completed' && f.usage_bytes > 0));
  const names = await Promise.all(batchFiles.map(async (f) => (await client.files.retrieve(f.id)).filename));
  assert.deepEqual(names.sort(), Object.keys(FILES).sort());

  const stored = await client.vectorStores.retrieve(store.id);
  assert.equal(stored.file_counts.completed, 2);

  const results = [];
  for await (const r of client.vectorStores.search(store.id, { query: 'What is the launch code for Project Zephyr?' })) {
    results.push(r);
  }
  assert.ok(results.length >= 1);
  assert.equal(results[0].filename, 'zephyr.txt', JSON.stringify(results.map((r) => [r.filename, r.score])));
  assert.ok(batchFiles.some((f) => f.id === results[0].file_id));
  assert.equal(results[0].content[0].type, 'text');
  assert.match(results[0].content[0].text, /7-4-1-9/);
  const scores = results.map((r) => r.score);
  assert.deepEqual(scores, [...scores].sort((a, b) => b - a), 'results are ranked');

  const one = await client.vectorStores.search(store.id, { query: 'potassium fruit', max_num_results: 1 });
  assert.equal(one.data.length, 1);
  assert.equal(one.data[0].filename, 'fruit.txt');

  assert.equal((await client.vectorStores.delete(store.id)).deleted, true);
});
