#!/usr/bin/env node
// A scripted charging station built on the npm package `ocpp-rpc` in strict mode: every frame it
// sends and every frame it receives (CALLs from the CSMS, answers to its own CALLs) is validated
// against the official OCPP 1.6 / 2.0.1 JSON schemas shipped with the package. Driven by
// tests/python/test_interop_node.py.
//
// Usage: node station.js --url ws://HOST:PORT/ocpp --id STATION_ID --protocol ocpp1.6|ocpp2.0.1
//                        --token ID_TAG [--timeout SECONDS]
//
// Scenario: BootNotification, StatusNotification Available, a local transaction with signed
// meter values (1.6: SignedData/OCMF beside integer meterStart/meterStop; 2.0.1: signed
// Transaction.Begin / Transaction.End readings and one unsigned periodic sample), then it waits
// for a remote start (RemoteStartTransaction / RequestStartTransaction), charges, and stops when
// it is told to (RemoteStopTransaction / RequestStopTransaction).
//
// It reports progress as JSON lines on stdout ({"event": ...}) and exits 0 when the scenario
// completed without any schema violation in either direction, 1 otherwise.
'use strict';

const { RPCClient } = require('ocpp-rpc');

function args() {
    const out = { timeout: 120 };
    const argv = process.argv.slice(2);
    for (let i = 0; i < argv.length; i += 2) {
        out[argv[i].replace(/^--/, '')] = argv[i + 1];
    }
    for (const k of ['url', 'id', 'protocol', 'token']) {
        if (!out[k]) {
            console.error(`missing --${k}`);
            process.exit(2);
        }
    }
    return out;
}

const opts = args();
const v16 = opts.protocol === 'ocpp1.6';
const failures = [];

function report(event, data = {}) {
    process.stdout.write(JSON.stringify({ event, ...data }) + '\n');
}

function fail(what, err) {
    failures.push(`${what}: ${err && err.stack ? err.stack : err}`);
    report('failure', { what, error: String(err && err.message ? err.message : err) });
}

/** UTC now, milliseconds, `Z`. */
function now() {
    return new Date().toISOString();
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** An OCMF record as Eichrecht meters sign it (the signature is a placeholder). */
function ocmf(wh, ts) {
    const payload = {
        FV: '1.0', GI: 'NODE-METER', GS: 'SN-NODE-1', PG: 'T1',
        RD: [{ TM: ts.replace('Z', ',000+0000 S'), TX: 'B', RV: wh / 1000, RI: '1-b:1.8.0', RU: 'kWh', RT: 'AC', ST: 'G' }],
    };
    return `OCMF|${JSON.stringify(payload)}|{"SA":"ECDSA-secp256r1-SHA256","SD":"3045022100B1"}`;
}

const PUBLIC_KEY = 'MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEnodeinteroptestkey';

const client = new RPCClient({
    endpoint: opts.url,
    identity: opts.id,
    protocols: [opts.protocol],
    strictMode: true,
    reconnect: false,
    callTimeoutMs: 20000,
});

client.on('strictValidationFailure', (e) => {
    fail(`schema violation (${e.outbound ? 'outbound' : 'inbound'} ${e.isCall ? 'call' : 'response'} ${e.method})`, e.error);
});
client.on('close', (e) => report('closed', { code: e.code, reason: String(e.reason || '') }));

async function call(method, params) {
    const answer = await client.call(method, params);
    report('answer', { method, answer });
    return answer;
}

// ----- remote start / stop -----

let remote = null; // { idTag | idToken, remoteStartId }
let remoteStarted;
const remoteStart = new Promise((r) => { remoteStarted = r; });
let remoteStopped;
const remoteStop = new Promise((r) => { remoteStopped = r; });
let currentTx = null;

if (v16) {
    client.handle('RemoteStartTransaction', ({ params }) => {
        report('remote_start', { params });
        remote = { idTag: params.idTag, connectorId: params.connectorId || 1 };
        setTimeout(() => remoteStarted(), 50);
        return { status: 'Accepted' };
    });
    client.handle('RemoteStopTransaction', ({ params }) => {
        report('remote_stop', { params });
        const known = currentTx !== null && params.transactionId === currentTx;
        if (known) setTimeout(() => remoteStopped(), 50);
        return { status: known ? 'Accepted' : 'Rejected' };
    });
} else {
    client.handle('RequestStartTransaction', ({ params }) => {
        report('remote_start', { params });
        remote = { idToken: params.idToken, remoteStartId: params.remoteStartId, evseId: params.evseId || 1 };
        setTimeout(() => remoteStarted(), 50);
        return { status: 'Accepted' };
    });
    client.handle('RequestStopTransaction', ({ params }) => {
        report('remote_stop', { params });
        const known = currentTx !== null && params.transactionId === currentTx;
        if (known) setTimeout(() => remoteStopped(), 50);
        return { status: known ? 'Accepted' : 'Rejected' };
    });
}
// A reconnecting station is asked for its statuses; answer like a real one.
client.handle('TriggerMessage', ({ params }) => {
    report('trigger', { params });
    return { status: 'Rejected' };
});

// ----- OCPP 1.6 -----

async function status16(status) {
    await call('StatusNotification', { connectorId: 1, errorCode: 'NoError', status, timestamp: now() });
}

function energy16(wh, context, ts) {
    return { value: String(wh), context, measurand: 'Energy.Active.Import.Register', unit: 'Wh', location: 'Outlet' };
}

function signed16(wh, context, ts) {
    return { value: ocmf(wh, ts), context, format: 'SignedData', measurand: 'Energy.Active.Import.Register', unit: 'Wh' };
}

async function run16() {
    const boot = await call('BootNotification', { chargePointVendor: 'NodeVendor', chargePointModel: 'ocpp-rpc-strict', meterSerialNumber: 'SN-NODE-1', meterType: 'Eichrecht AC' });
    if (boot.status !== 'Accepted') throw new Error(`boot ${boot.status}`);
    report('booted');
    await status16('Available');

    // Local transaction: integer meterStart/meterStop, a decimal periodic sample, OCMF signed data.
    const auth = await call('Authorize', { idTag: opts.token });
    if (auth.idTagInfo.status !== 'Accepted') throw new Error(`authorize ${auth.idTagInfo.status}`);
    await status16('Preparing');
    const t0 = now();
    const start = await call('StartTransaction', { connectorId: 1, idTag: opts.token, meterStart: 1000, timestamp: t0 });
    if (start.idTagInfo.status !== 'Accepted') throw new Error(`start ${start.idTagInfo.status}`);
    const tx = start.transactionId;
    currentTx = tx;
    await status16('Charging');
    await sleep(300);
    const t1 = now();
    await call('MeterValues', {
        connectorId: 1, transactionId: tx,
        meterValue: [{ timestamp: t1, sampledValue: [energy16('2000.5', 'Sample.Periodic', t1), { value: '7400', measurand: 'Power.Active.Import', unit: 'W', context: 'Sample.Periodic' }] }],
    });
    await sleep(300);
    const t2 = now();
    await call('StopTransaction', {
        transactionId: tx, idTag: opts.token, meterStop: 3000, timestamp: t2, reason: 'Local',
        transactionData: [
            { timestamp: t0, sampledValue: [signed16(1000, 'Transaction.Begin', t0)] },
            { timestamp: t2, sampledValue: [energy16(3000, 'Transaction.End', t2), signed16(3000, 'Transaction.End', t2)] },
        ],
    });
    currentTx = null;
    await status16('Finishing');
    await status16('Available');
    report('local_done', { transactionId: tx });

    // Remote start / stop.
    report('ready_for_remote');
    await remoteStart;
    await status16('Preparing');
    const r0 = now();
    const rstart = await call('StartTransaction', { connectorId: remote.connectorId, idTag: remote.idTag, meterStart: 5000, timestamp: r0 });
    if (rstart.idTagInfo.status !== 'Accepted') throw new Error(`remote start ${rstart.idTagInfo.status}`);
    currentTx = rstart.transactionId;
    await status16('Charging');
    const r1 = now();
    await call('MeterValues', {
        connectorId: remote.connectorId, transactionId: currentTx,
        meterValue: [{ timestamp: r1, sampledValue: [energy16(5500, 'Sample.Periodic', r1)] }],
    });
    report('remote_charging', { transactionId: currentTx });
    await remoteStop;
    const r2 = now();
    await call('StopTransaction', { transactionId: currentTx, meterStop: 6000, timestamp: r2, reason: 'Remote' });
    currentTx = null;
    await status16('Finishing');
    await status16('Available');
    report('remote_done');
}

// ----- OCPP 2.0.1 -----

async function status201(connectorStatus) {
    await call('StatusNotification', { timestamp: now(), connectorStatus, evseId: 1, connectorId: 1 });
}

function reading201(wh, context, ts, signed) {
    const sv = { value: wh, context, measurand: 'Energy.Active.Import.Register', unitOfMeasure: { unit: 'Wh' } };
    if (signed) {
        sv.signedMeterValue = {
            signedMeterData: Buffer.from(ocmf(wh, ts)).toString('base64'),
            signingMethod: 'ECDSA-secp256r1-SHA256',
            encodingMethod: 'OCMF',
            publicKey: PUBLIC_KEY,
        };
    }
    return { timestamp: ts, sampledValue: [sv] };
}

async function event201(eventType, triggerReason, seqNo, transactionInfo, extra) {
    return call('TransactionEvent', { eventType, timestamp: now(), triggerReason, seqNo, transactionInfo, ...extra });
}

async function run201() {
    const boot = await call('BootNotification', {
        reason: 'PowerUp',
        chargingStation: { model: 'ocpp-rpc-strict', vendorName: 'NodeVendor', serialNumber: 'SN-NODE-2', firmwareVersion: '2.2.1' },
    });
    if (boot.status !== 'Accepted') throw new Error(`boot ${boot.status}`);
    report('booted');
    await status201('Available');

    // Local transaction: signed Begin and End, one unsigned periodic sample between them.
    const idToken = { idToken: opts.token, type: 'ISO14443' };
    const auth = await call('Authorize', { idToken });
    if (auth.idTokenInfo.status !== 'Accepted') throw new Error(`authorize ${auth.idTokenInfo.status}`);
    const txId = `node-local-${Date.now()}`;
    currentTx = txId;
    await status201('Occupied');
    const t0 = now();
    const started = await event201('Started', 'Authorized', 0, { transactionId: txId, chargingState: 'Charging' }, {
        idToken, evse: { id: 1, connectorId: 1 }, meterValue: [reading201(1000, 'Transaction.Begin', t0, true)],
    });
    if (started.idTokenInfo && started.idTokenInfo.status !== 'Accepted') throw new Error(`started ${started.idTokenInfo.status}`);
    await sleep(300);
    const t1 = now();
    await event201('Updated', 'MeterValuePeriodic', 1, { transactionId: txId, chargingState: 'Charging' }, {
        meterValue: [reading201(2000.5, 'Sample.Periodic', t1, false)],
    });
    await sleep(300);
    const t2 = now();
    await event201('Ended', 'StopAuthorized', 2, { transactionId: txId, chargingState: 'EVConnected', stoppedReason: 'Local' }, {
        idToken, meterValue: [reading201(3000, 'Transaction.End', t2, true)],
    });
    currentTx = null;
    await status201('Available');
    report('local_done', { transactionId: txId });

    // Remote start / stop.
    report('ready_for_remote');
    await remoteStart;
    const rtx = `node-remote-${Date.now()}`;
    currentTx = rtx;
    await status201('Occupied');
    const r0 = now();
    await event201('Started', 'RemoteStart', 0, { transactionId: rtx, chargingState: 'Charging', remoteStartId: remote.remoteStartId }, {
        idToken: remote.idToken, evse: { id: remote.evseId, connectorId: 1 }, meterValue: [reading201(5000, 'Transaction.Begin', r0, true)],
    });
    const r1 = now();
    await event201('Updated', 'MeterValuePeriodic', 1, { transactionId: rtx, chargingState: 'Charging' }, {
        meterValue: [reading201(5500, 'Sample.Periodic', r1, false)],
    });
    report('remote_charging', { transactionId: rtx });
    await remoteStop;
    const r2 = now();
    await event201('Ended', 'RemoteStop', 2, { transactionId: rtx, chargingState: 'EVConnected', stoppedReason: 'Remote' }, {
        meterValue: [reading201(6000, 'Transaction.End', r2, true)],
    });
    currentTx = null;
    await status201('Available');
    report('remote_done');
}

async function main() {
    const deadline = setTimeout(() => {
        fail('scenario', `not finished within ${opts.timeout} s`);
        process.exit(1);
    }, Number(opts.timeout) * 1000);
    try {
        await client.connect();
        report('connected', { protocol: client.protocol, identity: client.identity });
        await (v16 ? run16() : run201());
    } catch (e) {
        fail('scenario', e);
    }
    try {
        await client.close({ code: 1000, reason: 'done' });
    } catch (e) {
        fail('close', e);
    }
    clearTimeout(deadline);
    report('done', { failures });
    process.exit(failures.length === 0 ? 0 : 1);
}

main();
