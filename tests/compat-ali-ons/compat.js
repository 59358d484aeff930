'use strict';
// Compatibility test: the npm `ali-ons` RocketMQ client (pure JavaScript, remoting protocol)
// against a raftmq nameserver and broker group.
//
//   node compat.js 127.0.0.1:9876        (or NAMESRV=127.0.0.1:9876 node compat.js)
//
// 1. A producer sends COUNT messages synchronously (tags TagA/TagB alternating, two keys
//    each, some bodies above 4 KiB so the client compresses them) to a new topic, which the
//    broker creates from TBW102 on the first send. Every result must be SEND_OK with a msgId.
// 2. A push consumer in a new group (CONSUME_FROM_FIRST_OFFSET, subscription '*') must get
//    every acknowledged message with its body, tags, keys and msgId. It fails the first
//    delivery of every 50th message: those must come back through %RETRY%<group>.
// 3. A push consumer in a second new group subscribed to 'TagA' must get exactly the TagA
//    messages, and the broker must not hand it any TagB message (checked on the pull results,
//    before the client's own tag filter).
// 4. LIVE more messages are sent while both consumers run (long polling), some with delay
//    level 2; they must arrive too, the delayed ones not before their delay.
// 5. After the consumers close, the offsets they committed must cover every message.
//
// Exits 0 on success; non-zero with a FAIL line on any failure or after TIMEOUT_S seconds.

const assert = require('assert');
const { Producer, Consumer, Message } = require('ali-ons');
const PullStatus = require('ali-ons/lib/consumer/pull_status');

const NAMESRV = process.argv[2] || process.env.NAMESRV || '127.0.0.1:9876';
const COUNT = Number(process.env.COUNT || 200);
const LIVE = Number(process.env.LIVE || 20);
const TIMEOUT_S = Number(process.env.TIMEOUT_S || 90);
const RUN = `${Date.now().toString(36)}${process.pid}`;
const TOPIC = process.env.TOPIC || `AliOnsCompat_${RUN}`;
const shared = require('./common');

const { seconds, fail } = shared;
const log = shared.logger('compat-ali-ons');

const deadline = setTimeout(() => {
  fail(`not finished after ${TIMEOUT_S} s (state: ${state()})`);
}, TIMEOUT_S * 1000);

// The client reports asynchronous problems (failed pulls, offset queries, route lookups) as
// 'error' events rather than failing a call; each one is printed and counted.
// Expected ones, which ali-ons reports against Apache RocketMQ too:
// - a new group's %RETRY% topic has no route before the group's first heartbeat has
//   created it, and the client looks it up before that heartbeat;
// - QUERY_CONSUMER_OFFSET answers QUERY_NOT_FOUND for a new group on an empty queue (the
//   retry queue), as RocketMQ 5 does; the client then starts that queue at 0.
// Any other one fails the test.
const EXPECTED_ERRORS = [
  /No topic route info in name server for the topic: %RETRY%/,
  /readOffset failed, topic: %RETRY%\S+, .* Not found/,
];
const clientErrors = new Set();
const unexpectedErrors = new Set();
function onClientError(who) {
  return err => {
    // The client re-emits one error through every producer and consumer sharing its
    // connection, each time with another prefix.
    const text = `${err && err.name}: ${err && err.message}`.replace(/(MQPushConsumer occurred an error ?)+/g, '');
    if (clientErrors.has(text)) return;
    clientErrors.add(text);
    if (EXPECTED_ERRORS.some(re => re.test(text))) {
      log(`expected client error (${who}): ${text}`);
    } else {
      unexpectedErrors.add(text);
      console.error(`[compat-ali-ons] UNEXPECTED client error (${who}): ${text}`);
    }
  };
}

// The client asks for an HTTP client even when it is given a nameserver address; it is only
// used for Aliyun's address server, never here.
const httpclient = {
  async request() {
    throw new Error('no HTTP address server in this test');
  },
};

// The client's own log: warnings and errors once each (it repeats them every rebalance).
const seenLogLines = new Set();
function once(...args) {
  const line = args.map(String).join(' ');
  if (!seenLogLines.has(line)) {
    seenLogLines.add(line);
    console.log('[ali-ons]', line.slice(0, 300));
  }
}
const logger = { info() {}, debug() {}, warn: once, error: once };

const common = {
  nameSrv: NAMESRV,
  httpclient,
  logger,
  // A short rebalance interval so a newly subscribed group gets its queues quickly.
  rebalanceInterval: 2000,
  persistConsumerOffsetInterval: 1000,
  // Routes every 5 s instead of 30 s: a new group's retry topic gets its route (see
  // EXPECTED_ERRORS) on the first refresh after the group's first heartbeat.
  pollNameServerInteval: 5000,
};

// key -> what was sent and acknowledged
const sent = new Map();
// group label -> Map(key -> first delivered message)
const received = { all: new Map(), tagA: new Map() };
const duplicates = { all: 0, tagA: 0 };
let tagBFromBroker = 0;

function state() {
  return `sent ${sent.size}, all ${received.all.size}, tagA ${received.tagA.size}`;
}

function bodyFor(i) {
  // Bodies of every 25th message are above the client's 4 KiB compression threshold.
  const base = `raftmq ali-ons message ${i} of run ${RUN} – é ü 漢字 ✓`;
  return i % 25 === 7 ? base + ' ' + 'x'.repeat(5000) : base;
}

// Messages sent while consuming with i % 10 === 5 carry delay level 2 (5 s): the broker
// keeps them in its schedule topic and delivers them to the topic when they are due.
const DELAY_LEVEL = 2;
const DELAY_MS = 5000;
function isDelayed(i) {
  return i >= COUNT && i % 10 === 5;
}

async function sendOne(producer, i) {
  const tag = i % 2 === 0 ? 'TagA' : 'TagB';
  const key = `k-${RUN}-${i}`;
  const body = bodyFor(i);
  const msg = new Message(TOPIC, tag, body);
  msg.keys = [ key, `order-${i}` ];
  if (isDelayed(i)) msg.delayTimeLevel = DELAY_LEVEL;
  const sentAt = Date.now();
  let res;
  try {
    res = await producer.send(msg);
  } catch (err) {
    fail(`send #${i} threw ${err.name}: ${err.message}`);
  }
  if (!res || res.sendStatus !== 'SEND_OK') {
    fail(`send #${i}: status ${res && res.sendStatus}, expected SEND_OK (${JSON.stringify(res)})`);
  }
  if (typeof res.msgId !== 'string' || !/^[0-9A-F]{32}$/.test(res.msgId)) {
    fail(`send #${i}: msgId ${JSON.stringify(res.msgId)} is not 32 upper-case hex digits`);
  }
  if (!Number.isInteger(res.queueOffset) || res.queueOffset < 0) {
    fail(`send #${i}: queueOffset ${res.queueOffset} is not an offset`);
  }
  sent.set(key, { i, tag, key, body, sentAt, msgId: res.msgId, queueId: Number(res.messageQueue.queueId) });
}

function checkDelivered(label, msg) {
  const keys = (msg.keys || '').split(' ');
  const key = keys[0];
  const want = sent.get(key);
  if (!want) {
    fail(`${label}: unexpected message msgId ${msg.msgId} keys ${JSON.stringify(msg.keys)} topic ${msg.topic}`);
  }
  assert.strictEqual(msg.topic, TOPIC, `${label}: topic of ${key}`);
  assert.strictEqual(msg.tags, want.tag, `${label}: tags of ${key}`);
  assert.deepStrictEqual(keys, [ key, `order-${want.i}` ], `${label}: keys of ${key}`);
  assert.ok(Buffer.isBuffer(msg.body), `${label}: body of ${key} is not a Buffer`);
  assert.strictEqual(msg.body.toString('utf8'), want.body, `${label}: body of ${key}`);
  assert.ok(/^127\.0\.0\.1:\d+$/.test(msg.bornHost), `${label}: bornHost of ${key} is ${msg.bornHost}`);
  assert.ok(msg.bornTimestamp >= want.sentAt - 1000 && msg.bornTimestamp <= Date.now() + 1000,
    `${label}: bornTimestamp of ${key} is ${msg.bornTimestamp}, sent at ${want.sentAt}`);
  assert.ok(msg.storeTimestamp >= msg.bornTimestamp - 1000, `${label}: storeTimestamp of ${key} before its bornTimestamp`);
  if (isDelayed(want.i)) {
    // Stored again when due: a new msgId, and not before the delay has passed.
    const early = want.sentAt + DELAY_MS - 500 - Date.now();
    assert.ok(early <= 0, `${label}: delayed ${key} delivered ${early} ms before its delay of ${DELAY_MS} ms`);
    assert.notStrictEqual(msg.msgId, want.msgId, `${label}: msgId of delayed ${key}`);
  } else if (msg.reconsumeTimes > 0) {
    // Redelivered from the group's retry topic: a new message that names the original.
    assert.ok(label === 'all' && isRetried(want.i), `${label}: ${key} redelivered (reconsumeTimes ${msg.reconsumeTimes})`);
    assert.strictEqual(msg.originMessageId, want.msgId, `${label}: ORIGIN_MESSAGE_ID of redelivered ${key}`);
    assert.notStrictEqual(msg.msgId, want.msgId, `${label}: msgId of redelivered ${key}`);
  } else {
    assert.strictEqual(msg.msgId, want.msgId, `${label}: msgId of ${key} (send result vs delivered)`);
    assert.strictEqual(msg.queueId, want.queueId, `${label}: queueId of ${key}`);
  }
  if (label === 'tagA') {
    assert.strictEqual(want.tag, 'TagA', `${label}: got ${key} with tag ${want.tag}`);
  }
}

// Group 'all' fails the first delivery of these messages: the client sends them back
// (CONSUMER_SEND_MSG_BACK) and the broker must redeliver them through %RETRY%<group>
// after the first retry delay (10 s by default).
function isRetried(i) {
  return i % 50 === 3;
}
const failedOnce = new Set();

function makeConsumer(label, group, subExpression) {
  const consumer = new Consumer(Object.assign({}, common, {
    consumerGroup: group,
    consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET',
  }));
  consumer.on('error', onClientError(label));
  if (label === 'tagA') {
    // Count TagB messages the broker returns to this group, before the client filters them.
    const pull = consumer.pullKernelImpl.bind(consumer);
    consumer.pullKernelImpl = async (...args) => {
      const res = await pull(...args);
      if (res.pullStatus === PullStatus.FOUND) {
        for (const m of res.msgFoundList) {
          if (m.tags !== 'TagA') tagBFromBroker++;
        }
      }
      return res;
    };
  }
  consumer.subscribe(TOPIC, subExpression, async msg => {
    const key = (msg.keys || '').split(' ')[0];
    // A message sent while consuming can arrive before its send call has returned.
    for (let n = 0; n < 200 && !sent.has(key) && key.startsWith(`k-${RUN}-`); n++) {
      await new Promise(r => setTimeout(r, 25));
    }
    try {
      checkDelivered(label, msg);
    } catch (err) {
      fail(err.message);
    }
    if (label === 'all' && isRetried(sent.get(key).i) && !failedOnce.has(key)) {
      if (msg.reconsumeTimes > 0) fail(`all: ${key} redelivered before its first delivery`);
      failedOnce.add(key);
      return Consumer.ACTION_RETRY;
    }
    if (label === 'all' && isRetried(sent.get(key).i) && msg.reconsumeTimes !== 1) {
      fail(`all: ${key} delivered again with reconsumeTimes ${msg.reconsumeTimes}, expected 1`);
    }
    if (received[label].has(key)) duplicates[label]++;
    else received[label].set(key, msg);
  });
  return consumer;
}

async function waitFor(what, cond) {
  while (!cond()) {
    await new Promise(r => setTimeout(r, 100));
  }
  log(`${what}: ${state()}`);
}

function expectedTagA() {
  return [ ...sent.values() ].filter(m => m.tag === 'TagA').length;
}

async function committedOffsets(client, group) {
  // Sum, over the topic's queues, of the offset the group committed on the broker.
  const route = await client.getTopicRouteInfoFromNameServer(TOPIC, 3000);
  let total = 0;
  for (const qd of route.queueDatas) {
    const bd = route.brokerDatas.find(b => b.brokerName === qd.brokerName);
    const addr = bd.brokerAddrs['0'];
    for (let q = 0; q < qd.readQueueNums; q++) {
      total += await client.queryConsumerOffset(addr, { topic: TOPIC, consumerGroup: group, queueId: q }, 3000);
    }
  }
  return total;
}

async function main() {
  log(`namesrv ${NAMESRV}, topic ${TOPIC}, ${COUNT} + ${LIVE} messages`);
  const producer = new Producer(Object.assign({}, common, { producerGroup: `PID_compat_${RUN}` }));
  producer.on('error', onClientError('producer'));
  await producer.ready();

  // ali-ons asks the nameserver for the topic's route before its first send and gives up on
  // TOPIC_NOT_EXIST (ali-ons issue #90, the same against Apache RocketMQ), so it never reaches
  // its own fallback to the default topic's route. Take that step here, as the Java client
  // does: the sends then carry defaultTopic TBW102 and the broker creates the topic.
  await producer._mqClient.updateTopicRouteInfoFromNameServer(TOPIC, true, producer);
  const t0 = Date.now();
  for (let i = 0; i < COUNT; i++) await sendOne(producer, i);
  const queues = new Set([ ...sent.values() ].map(m => m.queueId));
  log(`sent ${COUNT} messages, all SEND_OK, over queues ${[ ...queues ].sort().join(',')} in ${Date.now() - t0} ms`);
  if (queues.size < 2) fail(`all sends went to ${queues.size} queue(s); the auto-created topic should have several`);

  const groupAll = `GID_compat_all_${RUN}`;
  const groupTagA = `GID_compat_tagA_${RUN}`;
  const all = makeConsumer('all', groupAll, '*');
  const tagA = makeConsumer('tagA', groupTagA, 'TagA');
  await Promise.all([ all.ready(), tagA.ready() ]);
  log('consumers started');

  await waitFor('first batch consumed', () =>
    received.all.size >= COUNT && received.tagA.size >= expectedTagA());

  for (let i = COUNT; i < COUNT + LIVE; i++) await sendOne(producer, i);
  log(`sent ${LIVE} more messages while consuming`);
  await waitFor('live batch consumed', () =>
    received.all.size >= sent.size && received.tagA.size >= expectedTagA());

  for (const key of sent.keys()) {
    if (!received.all.has(key)) fail(`group all never got ${key}`);
  }
  if (received.tagA.size !== expectedTagA()) fail(`group tagA got ${received.tagA.size} messages, expected ${expectedTagA()}`);
  if (tagBFromBroker) fail(`the broker returned ${tagBFromBroker} TagB messages to the group subscribed to TagA`);

  await Promise.all([ all.close(), tagA.close() ]);
  // persistConsumerOffset on close sends the offsets oneway; poll until the broker has them.
  const api = producer._mqClient;
  let committed;
  const until = Date.now() + 15000;
  for (;;) {
    committed = [ await committedOffsets(api, groupAll), await committedOffsets(api, groupTagA) ];
    if (committed[0] === sent.size && committed[1] === sent.size) break;
    if (Date.now() > until) {
      fail(`committed offsets sum to ${committed[0]} (all) and ${committed[1]} (tagA), expected ${sent.size} each`);
    }
    await new Promise(r => setTimeout(r, 200));
  }
  log(`committed offsets cover all ${sent.size} messages in both groups`);
  await producer.close();

  clearTimeout(deadline);
  if (unexpectedErrors.size) {
    fail(`the client reported ${unexpectedErrors.size} unexpected errors:\n  ${[ ...unexpectedErrors ].join('\n  ')}`);
  }
  log(`OK: sent ${sent.size}, group all received ${received.all.size} (${duplicates.all} duplicates), ` +
      `group tagA received ${received.tagA.size} (${duplicates.tagA} duplicates, 0 TagB from the broker), ` +
      `${failedOnce.size} redelivered through the retry topic, ${clientErrors.size} expected client errors, ` +
      `${seconds().toFixed(1)} s`);
  process.exit(0);
}

main().catch(err => fail(`${err.name}: ${err.message}\n${err.stack}`));
