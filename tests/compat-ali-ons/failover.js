'use strict';
// Failover test: the npm `ali-ons` client against a raftmq group whose leader is killed
// (SIGKILL) mid-stream.
//
//   BROKER_PIDS=127.0.0.1:21000=1234,127.0.0.1:21010=1235,... node failover.js NAMESRV
//
// BROKER_PIDS maps each broker's remoting address to the pid of its process (started by the
// caller, .ci/compat-node). A producer sends messages one at a time, a push consumer
// consumes them; after KILL_AFTER acknowledged sends the node the nameserver shows as the
// leader (brokerId 0) is killed. Sends fail until a new leader is elected and the client has
// refreshed its route; they must then succeed again. Every acknowledged message must be
// consumed, with its body, tags and keys. Bounded by TIMEOUT_S.

const { Producer, Consumer, Message } = require('ali-ons');

const NAMESRV = process.argv[2] || process.env.NAMESRV;
const TOTAL = Number(process.env.TOTAL || 300);
const KILL_AFTER = Number(process.env.KILL_AFTER || 100);
const AFTER_KILL_MIN = Number(process.env.AFTER_KILL_MIN || 50);
const TIMEOUT_S = Number(process.env.TIMEOUT_S || 100);
// Pause between sends, so the kill lands while the consumer is busy too.
const SEND_GAP_MS = Number(process.env.SEND_GAP_MS || 10);
const RUN = `${Date.now().toString(36)}${process.pid}`;
const TOPIC = `AliOnsFailover_${RUN}`;
const shared = require('./common');

const { seconds, fail } = shared;
const log = shared.logger('failover-ali-ons');

if (!NAMESRV || !process.env.BROKER_PIDS) fail('usage: BROKER_PIDS=addr=pid,... node failover.js NAMESRV');
const pids = new Map(process.env.BROKER_PIDS.split(',').map(kv => {
  const [ addr, pid ] = kv.split('=');
  return [ addr, Number(pid) ];
}));

const deadline = setTimeout(() => fail(`not finished after ${TIMEOUT_S} s (${state()})`), TIMEOUT_S * 1000);

const sleep = ms => new Promise(r => setTimeout(r, ms));
const errors = new Map();
function onClientError(who) {
  return err => {
    // Connection errors and failed pulls are expected around the kill; they are counted.
    const text = `${who}: ${err && err.name}: ${(err && err.message || '').replace(/(MQPushConsumer occurred an error ?)+/g, '')}`;
    errors.set(text, (errors.get(text) || 0) + 1);
  };
}
const quietLogger = {
  info() {},
  debug() {},
  warn() {},
  error() {},
};
const common = {
  nameSrv: NAMESRV,
  httpclient: { async request() { throw new Error('no HTTP address server in this test'); } },
  logger: quietLogger,
  rebalanceInterval: 2000,
  persistConsumerOffsetInterval: 1000,
  pollNameServerInteval: 2000,
};

const attempted = new Map(); // key -> { tag, body }
const acked = new Set();
const received = new Set();
let acksAfterKill = 0;
let failedSends = 0;
let killedAt = 0;
let firstAckAfterKill = 0;

function state() {
  return `attempted ${attempted.size}, acknowledged ${acked.size} (${acksAfterKill} after the kill), failed ${failedSends}, consumed ${received.size}`;
}

async function leaderAddr(client) {
  const route = await client.getTopicRouteInfoFromNameServer(TOPIC, 3000);
  const b = route && route.brokerDatas.find(d => d.brokerName === 'broker-a');
  return b && b.brokerAddrs['0'];
}

async function main() {
  log(`namesrv ${NAMESRV}, topic ${TOPIC}, brokers ${process.env.BROKER_PIDS}`);
  const producer = new Producer(Object.assign({}, common, {
    producerGroup: `PID_failover_${RUN}`,
    retryTimesWhenSendFailed: 2,
  }));
  producer.on('error', onClientError('producer'));
  await producer.ready();
  // As in compat.js: the default-route step ali-ons skips (TOPIC_NOT_EXIST ends its lookup).
  // The brokers were just started: poll until the group has elected a leader and it has
  // registered TBW102 with the nameserver.
  for (const start = Date.now(); ; await sleep(200)) {
    try {
      await producer._mqClient.updateTopicRouteInfoFromNameServer(TOPIC, true, producer);
      log(`group leader registered after ${Date.now() - start} ms`);
      break;
    } catch (err) {
      if (Date.now() - start > 30000) fail(`no route for TBW102 after 30 s: ${err.message}`);
    }
  }

  async function send(i) {
    const key = `f-${RUN}-${i}`;
    const tag = i % 2 ? 'TagB' : 'TagA';
    const body = `failover message ${i} of ${RUN}`;
    attempted.set(key, { tag, body });
    const msg = new Message(TOPIC, tag, body);
    msg.keys = [ key ];
    try {
      const res = await producer.send(msg);
      if (res.sendStatus !== 'SEND_OK') throw new Error(`status ${res.sendStatus}`);
      acked.add(key);
      if (killedAt) {
        acksAfterKill++;
        if (!firstAckAfterKill) {
          firstAckAfterKill = Date.now();
          log(`first acknowledged send after the kill, ${firstAckAfterKill - killedAt} ms after it`);
        }
      }
      return true;
    } catch (err) {
      failedSends++;
      if (!killedAt) fail(`send #${i} failed before the kill: ${err.name}: ${err.message}`);
      return false;
    }
  }

  if (!await send(0)) fail('first send failed');
  const consumer = new Consumer(Object.assign({}, common, {
    consumerGroup: `GID_failover_${RUN}`,
    consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET',
  }));
  consumer.on('error', onClientError('consumer'));
  consumer.subscribe(TOPIC, '*', async msg => {
    const key = msg.keys;
    const want = attempted.get(key);
    if (!want) fail(`consumed a message never sent: keys ${JSON.stringify(key)}, msgId ${msg.msgId}`);
    if (msg.tags !== want.tag) fail(`tags of ${key}: ${msg.tags}, expected ${want.tag}`);
    if (!msg.body || msg.body.toString() !== want.body) fail(`body of ${key} differs`);
    received.add(key);
  });
  await consumer.ready();
  log('producer and consumer started');

  const sendUntil = Date.now() + (TIMEOUT_S - 40) * 1000;
  let i = 1;
  while (acked.size < TOTAL && Date.now() < sendUntil) {
    if (!killedAt && acked.size >= KILL_AFTER) {
      const addr = await leaderAddr(producer._mqClient);
      const pid = pids.get(addr);
      if (!pid) fail(`leader ${addr} is not one of BROKER_PIDS`);
      process.kill(pid, 'SIGKILL');
      killedAt = Date.now();
      log(`killed leader ${addr} (pid ${pid}) with SIGKILL; ${state()}`);
    }
    const okSend = await send(i++);
    await sleep(okSend ? SEND_GAP_MS : 100);
  }
  log(`sending done: ${state()}`);
  if (!killedAt) fail(`never reached ${KILL_AFTER} acknowledged sends`);
  if (acksAfterKill < AFTER_KILL_MIN) {
    fail(`only ${acksAfterKill} acknowledged sends after the kill (at least ${AFTER_KILL_MIN} expected): ${state()}`);
  }
  const newLeader = await leaderAddr(producer._mqClient);
  log(`leader now ${newLeader}`);

  const waitUntil = Date.now() + 30000;
  let missing;
  for (;;) {
    missing = [ ...acked ].filter(k => !received.has(k));
    if (!missing.length) break;
    if (Date.now() > waitUntil) {
      fail(`${missing.length} acknowledged messages never consumed (e.g. ${missing.slice(0, 5).join(', ')}); ${state()}`);
    }
    await sleep(200);
  }
  clearTimeout(deadline);
  const unacked = [ ...received ].filter(k => !acked.has(k)).length;
  log(`OK: ${acked.size} acknowledged (${acksAfterKill} after the kill, first one ${firstAckAfterKill - killedAt} ms after it), ` +
      `${failedSends} sends failed around the kill, all ${acked.size} acknowledged consumed ` +
      `(+${unacked} of the failed ones), ${[ ...errors.values() ].reduce((a, b) => a + b, 0)} client errors reported, ` +
      `${seconds().toFixed(1)} s`);
  for (const [ text, n ] of errors) console.log(`  client error x${n}: ${text.slice(0, 200)}`);
  process.exit(0);
}

main().catch(err => fail(`${err.name}: ${err.message}\n${err.stack}`));
