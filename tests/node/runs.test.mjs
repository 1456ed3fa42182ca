// Runs on the bundled model: createAndPoll, streaming with the SDK's event helpers, and function calling with
// streamed tool outputs.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { client, MODEL, TIMEOUT, WEATHER_TOOL, textOf } from './helpers.mjs';

let assistant;
let toolAssistant;

before(async () => {
  assistant = await client.beta.assistants.create({
    model: MODEL,
    name: 'node-runner',
    instructions: 'You answer briefly.',
    temperature: 0,
  });
  toolAssistant = await client.beta.assistants.create({
    model: MODEL,
    name: 'node-tools',
    instructions: 'Use the get_weather tool to answer questions about the weather.',
    tools: [WEATHER_TOOL],
    temperature: 0,
  });
});

test('runs.createAndPoll completes with a non-empty assistant reply', { timeout: TIMEOUT }, async () => {
  const thread = await client.beta.threads.create({
    messages: [{ role: 'user', content: 'What is the capital of France?' }],
  });
  const run = await client.beta.threads.runs.createAndPoll(
    thread.id,
    { assistant_id: assistant.id, max_completion_tokens: 48 },
    { pollIntervalMs: 100 },
  );
  assert.equal(run.status, 'completed', JSON.stringify(run.incomplete_details ?? run.last_error));
  assert.equal(run.thread_id, thread.id);
  assert.equal(run.assistant_id, assistant.id);
  assert.equal(run.model, MODEL);
  assert.ok(run.completed_at >= run.started_at && run.started_at >= run.created_at);
  assert.ok(run.usage.prompt_tokens > 0 && run.usage.completion_tokens > 0);
  assert.ok(run.usage.completion_tokens <= 48);
  assert.equal(run.usage.total_tokens, run.usage.prompt_tokens + run.usage.completion_tokens);

  const messages = await client.beta.threads.messages.list(thread.id, { run_id: run.id });
  assert.equal(messages.data.length, 1);
  const [reply] = messages.data;
  assert.equal(reply.role, 'assistant');
  assert.equal(reply.status, 'completed');
  assert.equal(reply.run_id, run.id);
  assert.equal(reply.assistant_id, assistant.id);
  assert.ok(textOf(reply).trim().length > 0, 'the reply has text');

  const retrieved = await client.beta.threads.runs.retrieve(run.id, { thread_id: thread.id });
  assert.equal(retrieved.status, 'completed');
  const steps = await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id });
  assert.equal(steps.data.length, 1);
  assert.equal(steps.data[0].type, 'message_creation');
  assert.equal(steps.data[0].step_details.message_creation.message_id, reply.id);
});

test('runs.stream: text deltas add up to the stored message, finalRun is completed', { timeout: TIMEOUT }, async () => {
  const thread = await client.beta.threads.create({
    messages: [{ role: 'user', content: 'What is the capital of France?' }],
  });
  const events = [];
  let streamed = '';
  let deltas = 0;
  let snapshotText = '';
  let created = 0;
  let doneText;
  const stream = client.beta.threads.runs
    .stream(thread.id, { assistant_id: assistant.id, max_completion_tokens: 48 })
    .on('event', (event) => events.push(event.event))
    .on('textCreated', () => {
      created += 1;
    })
    .on('textDelta', (delta, snapshot) => {
      deltas += 1;
      streamed += delta.value;
      snapshotText = snapshot.value;
    })
    .on('textDone', (content) => {
      doneText = content.value;
    });
  const run = await stream.finalRun();
  const finalMessages = await stream.finalMessages();

  // at temperature 0 the model answers this in about 13 tokens, well inside the limit
  assert.equal(run.status, 'completed', JSON.stringify(run.incomplete_details ?? run.last_error));
  assert.deepEqual(events.slice(0, 3), ['thread.run.created', 'thread.run.queued', 'thread.run.in_progress']);
  assert.equal(events.at(-1), 'thread.run.completed');
  for (const name of ['thread.run.step.created', 'thread.message.created', 'thread.message.delta']) {
    assert.ok(events.includes(name), `${name} was streamed`);
  }
  assert.equal(created, 1);
  assert.ok(deltas > 1 && streamed.trim().length > 0, `text came in several deltas (${deltas})`);
  assert.equal(snapshotText, streamed, 'the SDK snapshot is the concatenated deltas');
  assert.equal(doneText, streamed);

  const stored = await client.beta.threads.messages.list(thread.id, { run_id: run.id });
  assert.equal(stored.data.length, 1);
  assert.equal(textOf(stored.data[0]), streamed, 'the deltas equal the stored message text');
  assert.equal(finalMessages.length, 1);
  assert.equal(finalMessages[0].id, stored.data[0].id);
  assert.equal(textOf(finalMessages[0]), streamed);
  assert.deepEqual(await client.beta.threads.runs.retrieve(run.id, { thread_id: thread.id }), run);
});

function streamWeatherCall(threadId) {
  return client.beta.threads.runs.stream(threadId, {
    assistant_id: toolAssistant.id,
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
    max_completion_tokens: 48,
  });
}

test('function calling: requires_action, then submitToolOutputsStream to a terminal run', { timeout: TIMEOUT }, async () => {
  const thread = await client.beta.threads.create({
    messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
  });
  const firstEvents = [];
  const first = streamWeatherCall(thread.id).on('event', (event) => firstEvents.push(event.event));
  const waiting = await first.finalRun();
  assert.equal(waiting.status, 'requires_action', JSON.stringify(waiting.last_error ?? waiting.incomplete_details));
  assert.equal(waiting.required_action.type, 'submit_tool_outputs');
  const calls = waiting.required_action.submit_tool_outputs.tool_calls;
  assert.ok(calls.length >= 1);
  for (const call of calls) {
    assert.equal(call.type, 'function');
    assert.equal(call.function.name, 'get_weather');
    const args = JSON.parse(call.function.arguments);
    assert.equal(typeof args.city, 'string');
    assert.ok(args.city.length > 0);
  }
  assert.equal(firstEvents.at(-1), 'thread.run.requires_action');
  assert.ok(firstEvents.includes('thread.run.step.created'), 'the tool call step is announced');
  const polled = await client.beta.threads.runs.retrieve(waiting.id, { thread_id: thread.id });
  assert.equal(polled.status, 'requires_action');

  const events = [];
  let streamed = '';
  const second = client.beta.threads.runs
    .submitToolOutputsStream(waiting.id, {
      thread_id: thread.id,
      tool_outputs: calls.map((c) => ({ tool_call_id: c.id, output: 'Sunny, 21 degrees Celsius.' })),
    })
    .on('event', (event) => events.push(event.event))
    .on('textDelta', (delta) => {
      streamed += delta.value;
    });
  const run = await second.finalRun();
  assert.equal(run.id, waiting.id);
  assert.ok(['completed', 'incomplete'].includes(run.status), `run ended ${run.status}: ${events.join(', ')}`);
  if (run.status === 'incomplete') assert.equal(run.incomplete_details?.reason, 'max_completion_tokens');
  assert.deepEqual(events.slice(0, 2), ['thread.run.queued', 'thread.run.in_progress']);
  assert.equal(events.at(-1), `thread.run.${run.status}`);
  assert.ok(events.includes('thread.run.step.completed'), 'the tool call step is closed');
  assert.ok(events.includes('thread.message.created'), 'an answer message is streamed');

  const messages = await client.beta.threads.messages.list(thread.id, { run_id: run.id });
  assert.equal(messages.data.length, 1);
  assert.equal(textOf(messages.data[0]), streamed);
  const steps = await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id, order: 'asc' });
  assert.equal(steps.data[0].type, 'tool_calls');
  const [stepCall] = steps.data[0].step_details.tool_calls;
  assert.equal(stepCall.id, calls[0].id);
  assert.equal(stepCall.function.output, 'Sunny, 21 degrees Celsius.');
});

// OpenAI opens a tool_calls step with `tool_calls: []` and brings the calls in deltas; the SDK appends each delta
// to its snapshot, so a step that opened full would reach toolCallDone with its id, name and arguments doubled.
test(
  "streamed tool calls: the SDK's toolCallDone snapshot equals the run's required_action",
  { timeout: TIMEOUT },
  async () => {
    const thread = await client.beta.threads.create({
      messages: [{ role: 'user', content: 'What is the weather in Rome?' }],
    });
    const created = [];
    const done = [];
    const stream = streamWeatherCall(thread.id)
      .on('toolCallCreated', (call) => created.push(structuredClone(call)))
      .on('toolCallDone', (call) => done.push(structuredClone(call)));
    const run = await stream.finalRun();
    try {
      assert.equal(run.status, 'requires_action');
      const expected = run.required_action.submit_tool_outputs.tool_calls.map((c) => [
        c.id,
        c.function.name,
        c.function.arguments,
      ]);
      assert.deepEqual(done.map((c) => [c.id, c.function.name, c.function.arguments]), expected);
      assert.deepEqual(created.map((c) => c.id), expected.map(([id]) => id));
    } finally {
      if (run.status === 'requires_action') await client.beta.threads.runs.cancel(run.id, { thread_id: thread.id });
    }
  },
);
