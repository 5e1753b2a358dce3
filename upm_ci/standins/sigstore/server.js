#!/usr/bin/env node
// Local Sigstore stand-in: Fulcio + CT log + Rekor v1 + Rekor v2 + TSA on 127.0.0.1.
//
// Built on @sigstore/mock's handlers, with the adapters that real sigstore-python needs
// (see docs in upm_ci/standins/sigstore_server.py and shared notes "local-services"):
//   1. Fulcio: Bearer token + base64-of-PEM CSR -> the handler's request shape.
//   2. Fulcio: URI SAN https://github.com/<job_workflow_ref> for GitHub Actions tokens.
//   3. TSA: DER RFC 3161 TimeStampReq -> tsa.timestamp().
//   4. Rekor v1 dsse entries stored as {envelopeHash, payloadHash, signatures}.
// plus a hand-written Rekor v2 log (real Merkle tree, signed checkpoints), fault
// injection for retry tests, and a trust config (trustedRoot + signingConfig) file.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');

const asn1js = require('asn1js');
const pkijs = require('pkijs');
const mock = require('@sigstore/mock');

const GITHUB_ISSUER = 'https://token.actions.githubusercontent.com';
const SAN_CLAIM = 'x-upm-standin-san';
const OPERATOR = 'upm-ci.standin';
const MAX_BODY = 16 * 1024 * 1024;
const MAX_LOG = 10000;

function usage() {
  return [
    'usage: node server.js [options]',
    '  --port N                 port on 127.0.0.1 (0 = pick a free one; default 0)',
    '  --trust-config-out PATH  write a ClientTrustConfig (Rekor v1 first, v2 also listed)',
    '  --trust-config-v2-out P  write a ClientTrustConfig that selects Rekor v2 by default',
    '  --delay-ms N             answer every request after N ms',
    '  --rekor-delay-ms N       answer Rekor entry creation (v1 and v2) after N ms',
    '  --fault-rate F           answer a fraction F (0..1) of requests with 503',
    '  --fault-seed S           seed for --fault-rate (default 1)',
    '  --exit-on-stdin-eof      exit when stdin closes (the parent process went away)',
    '  --verbose                log each request on stderr',
  ].join('\n');
}

function parseArgs(argv) {
  const opts = {
    port: 0,
    trustConfigOut: null,
    trustConfigV2Out: null,
    delayMs: 0,
    rekorDelayMs: 0,
    faultRate: 0,
    faultSeed: 1,
    exitOnStdinEof: false,
    verbose: false,
  };
  const num = (name, v) => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < 0) {
      throw new Error(`${name} needs a non-negative number, got ${JSON.stringify(v)}`);
    }
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => argv[++i];
    switch (a) {
      case '--port': opts.port = num(a, next()); break;
      case '--trust-config-out': opts.trustConfigOut = next(); break;
      case '--trust-config-v2-out': opts.trustConfigV2Out = next(); break;
      case '--delay-ms': opts.delayMs = num(a, next()); break;
      case '--rekor-delay-ms': opts.rekorDelayMs = num(a, next()); break;
      case '--fault-rate': opts.faultRate = num(a, next()); break;
      case '--fault-seed': opts.faultSeed = num(a, next()); break;
      case '--exit-on-stdin-eof': opts.exitOnStdinEof = true; break;
      case '--verbose': opts.verbose = true; break;
      case '-h': case '--help': process.stdout.write(usage() + '\n'); process.exit(0); break;
      default: throw new Error(`unknown option ${a}\n${usage()}`);
    }
  }
  if (opts.faultRate > 1) throw new Error('--fault-rate must be between 0 and 1');
  return opts;
}

// ---------------------------------------------------------------- small helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sha256 = (data) => crypto.createHash('sha256').update(data).digest();
const b64 = (buf) => Buffer.from(buf).toString('base64');
const b64url = (buf) => Buffer.from(buf).toString('base64url');

function newKeyPair() {
  return crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
}

function spkiDer(publicKey) {
  return publicKey.export({ format: 'der', type: 'spki' });
}

function json(status, obj, headers = {}) {
  return { status, body: Buffer.from(JSON.stringify(obj)), headers: { 'content-type': 'application/json', ...headers } };
}

function error(status, message) {
  // Real Fulcio and Rekor answer errors as {"code": N, "message": "..."}.
  return json(status, { code: status, message });
}

// Seeded PRNG (mulberry32) so that --fault-rate runs are reproducible.
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function decodeJwtClaims(token) {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error('OIDC token is not a JWT');
  const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  if (claims === null || typeof claims !== 'object') throw new Error('JWT payload is not an object');
  return { parts, claims };
}

// ---------------------------------------------------------------- Rekor v2 log

// An append-only RFC 6962 Merkle tree; complete subtrees are cached, so proofs stay cheap.
class MerkleLog {
  constructor() {
    this.leaves = [];
    this.cache = new Map();
  }

  append(body) {
    this.leaves.push(sha256(Buffer.concat([Buffer.from([0x00]), body])));
    return this.leaves.length - 1;
  }

  static split(n) {
    let k = 1;
    while (k * 2 < n) k *= 2;
    return k;
  }

  hash(start, n) {
    if (n === 1) return this.leaves[start];
    const complete = (n & (n - 1)) === 0;
    const key = `${start}:${n}`;
    if (complete && this.cache.has(key)) return this.cache.get(key);
    const k = MerkleLog.split(n);
    const h = sha256(Buffer.concat([Buffer.from([0x01]), this.hash(start, k), this.hash(start + k, n - k)]));
    if (complete) this.cache.set(key, h);
    return h;
  }

  // Audit path for leaf m in the tree of the first n leaves, leaf level first.
  proof(m, n, start = 0) {
    if (n === 1) return [];
    const k = MerkleLog.split(n);
    if (m < k) return [...this.proof(m, k, start), this.hash(start + k, n - k)];
    return [...this.proof(m - k, n - k, start + k), this.hash(start, k)];
  }
}

function hashAlgorithmFor(keyDetails) {
  if (/P384|SHA_384|SHA384/.test(keyDetails || '')) return 'SHA2_384';
  if (/P521|SHA_512|SHA512|ED25519/.test(keyDetails || '')) return 'SHA2_512';
  return 'SHA2_256';
}

function checkVerifier(v, where) {
  if (!v || typeof v !== 'object') throw new Error(`${where}: missing verifier`);
  const hasCert = v.x509Certificate && v.x509Certificate.rawBytes;
  const hasKey = v.publicKey && v.publicKey.rawBytes;
  if (!hasCert === !hasKey) throw new Error(`${where}: exactly one of x509Certificate or publicKey`);
  if (!v.keyDetails) throw new Error(`${where}: missing keyDetails`);
}

class RekorV2 {
  constructor(keyPair, origin) {
    this.keyPair = keyPair;
    this.origin = origin;
    this.spki = spkiDer(keyPair.publicKey);
    this.keyId = sha256(this.spki);
    this.log = new MerkleLog();
  }

  // Turn a CreateEntryRequest into the canonical log entry body, as rekor-tiles does.
  entryFor(request) {
    const hr = request.hashedRekordRequestV002;
    const ds = request.dsseRequestV002;
    if (!hr === !ds) throw new Error('exactly one of hashedRekordRequestV002 or dsseRequestV002 must be set');
    if (hr) {
      if (!hr.digest) throw new Error('hashedRekordRequestV002: missing digest');
      if (!hr.signature || !hr.signature.content) throw new Error('hashedRekordRequestV002: missing signature');
      checkVerifier(hr.signature.verifier, 'hashedRekordRequestV002.signature');
      return {
        kind: 'hashedrekord',
        apiVersion: '0.0.2',
        spec: {
          hashedRekordV002: {
            data: { algorithm: hashAlgorithmFor(hr.signature.verifier.keyDetails), digest: hr.digest },
            signature: hr.signature,
          },
        },
      };
    }
    const env = ds.envelope;
    if (!env || !env.payload || !Array.isArray(env.signatures) || env.signatures.length === 0) {
      throw new Error('dsseRequestV002: envelope needs payload and signatures');
    }
    if (!Array.isArray(ds.verifiers) || ds.verifiers.length === 0) throw new Error('dsseRequestV002: missing verifiers');
    ds.verifiers.forEach((v, i) => checkVerifier(v, `dsseRequestV002.verifiers[${i}]`));
    return {
      kind: 'dsse',
      apiVersion: '0.0.2',
      spec: {
        dsseV002: {
          payloadHash: { algorithm: 'SHA2_256', digest: b64(sha256(Buffer.from(env.payload, 'base64'))) },
          signatures: env.signatures.map((s, i) => ({ content: s.sig, verifier: ds.verifiers[Math.min(i, ds.verifiers.length - 1)] })),
        },
      },
    };
  }

  checkpoint(size, root) {
    const note = `${this.origin}\n${size}\n${b64(root)}\n`;
    const sig = crypto.sign('sha256', Buffer.from(note), this.keyPair.privateKey);
    const hintAndSig = Buffer.concat([this.keyId.subarray(0, 4), sig]);
    return `${note}\n\u2014 ${this.origin} ${b64(hintAndSig)}\n`;
  }

  add(request) {
    const entry = this.entryFor(request);
    const body = Buffer.from(JSON.stringify(entry));
    const index = this.log.append(body);
    const size = this.log.leaves.length;
    const root = this.log.hash(0, size);
    return {
      logIndex: String(index),
      logId: { keyId: b64(this.keyId) },
      kindVersion: { kind: entry.kind, version: entry.apiVersion },
      inclusionProof: {
        logIndex: String(index),
        rootHash: b64(root),
        treeSize: String(size),
        hashes: this.log.proof(index, size).map(b64),
        checkpoint: { envelope: this.checkpoint(size, root) },
      },
      canonicalizedBody: b64(body),
    };
  }
}

// ---------------------------------------------------------------- adapters

// Adapter 1 + 2: Fulcio request shape, token checks, GitHub URI SAN.
function fulcioAdapter(fulcioFn) {
  return async (req, raw) => {
    let body;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch (e) {
      return error(400, `request body is not JSON: ${e.message}`);
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization || '');
    const token = m ? m[1] : body.credentials && body.credentials.oidcIdentityToken;
    if (!token) return error(401, 'missing OIDC identity token (Authorization: Bearer)');
    let parts;
    let claims;
    try {
      ({ parts, claims } = decodeJwtClaims(token));
    } catch (e) {
      return error(401, `malformed OIDC identity token: ${e.message}`);
    }
    const now = Date.now() / 1000;
    const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!aud.includes('sigstore')) return error(401, `OIDC token audience ${JSON.stringify(claims.aud)} is not "sigstore"`);
    if (typeof claims.exp !== 'number' || claims.exp <= now) return error(401, 'OIDC token has expired');
    if (typeof claims.nbf === 'number' && claims.nbf > now + 5) return error(401, 'OIDC token is not valid yet');
    if (!claims.iss) return error(401, 'OIDC token has no issuer');

    let san;
    if (claims.iss === GITHUB_ISSUER) {
      if (!claims.job_workflow_ref) return error(400, 'GitHub Actions token lacks job_workflow_ref');
      san = `https://github.com/${claims.job_workflow_ref}`;
    } else {
      san = claims.email || claims.sub;
    }
    const injected = b64url(JSON.stringify({ ...claims, [SAN_CLAIM]: san }));
    const forwarded = { credentials: { oidcIdentityToken: `${parts[0]}.${injected}.${parts[2]}` } };

    if (body.certificateSigningRequest) {
      let csr = String(body.certificateSigningRequest);
      if (!csr.includes('-----BEGIN')) csr = Buffer.from(csr, 'base64').toString('utf8');
      forwarded.certificateSigningRequest = csr;
    } else if (body.publicKeyRequest) {
      forwarded.publicKeyRequest = body.publicKeyRequest;
    } else {
      return error(400, 'missing certificateSigningRequest or publicKeyRequest');
    }
    const res = await fulcioFn(JSON.stringify(forwarded));
    if (res.statusCode >= 400) return error(res.statusCode, String(res.response));
    return { status: res.statusCode, body: Buffer.from(res.response), headers: { 'content-type': res.contentType || 'application/json' } };
  };
}

// Adapter 3: DER RFC 3161 TimeStampReq -> tsa.timestamp(), keeping the client's nonce.
function tsaAdapter(tsa, jsonFn) {
  const origTstInfo = tsa.tstInfo.bind(tsa);
  tsa.tstInfo = (req) => {
    const info = origTstInfo(req);
    if (req.nonceInteger) info.nonce = req.nonceInteger;
    else if (req.nonce === undefined) delete info.nonce;
    return info;
  };
  return async (req, raw) => {
    const ctype = (req.headers['content-type'] || '').toLowerCase();
    if (ctype.includes('json')) {
      // sigstore-js shape: let the stock handler do it.
      const res = await jsonFn(raw.toString('utf8'));
      return { status: res.statusCode, body: Buffer.from(res.response), headers: { 'content-type': res.contentType || 'text/plain' } };
    }
    let tsReq;
    try {
      tsReq = pkijs.TimeStampReq.fromBER(new Uint8Array(raw).buffer);
    } catch (e) {
      return { status: 400, body: Buffer.from(`invalid TimeStampReq: ${e.message}`), headers: { 'content-type': 'text/plain' } };
    }
    const imprint = tsReq.messageImprint;
    const request = {
      artifactHash: Buffer.from(imprint.hashedMessage.valueBlock.valueHexView),
      hashAlgorithmOID: imprint.hashAlgorithm.algorithmId,
      policyOID: tsReq.reqPolicy || '1.3.6.1.4.1.57264.2',
      certReq: Boolean(tsReq.certReq),
      nonce: tsReq.nonce ? 0 : undefined,
      nonceInteger: tsReq.nonce ? new asn1js.Integer({ valueHex: tsReq.nonce.valueBlock.valueHexView }) : undefined,
    };
    try {
      const der = await tsa.timestamp(request);
      return { status: 200, body: der, headers: { 'content-type': 'application/timestamp-reply' } };
    } catch (e) {
      return { status: 400, body: Buffer.from(`timestamp failed: ${e.message}`), headers: { 'content-type': 'text/plain' } };
    }
  };
}

// Adapter 4: real Rekor keeps {envelopeHash, payloadHash, signatures} for dsse entries.
function rekorV1Adapter(rekorFn) {
  return async (req, raw) => {
    let entry;
    try {
      entry = JSON.parse(raw.toString('utf8'));
    } catch (e) {
      return error(400, `request body is not JSON: ${e.message}`);
    }
    if (entry && entry.kind === 'dsse' && entry.spec && entry.spec.proposedContent) {
      const pc = entry.spec.proposedContent;
      let env;
      try {
        env = JSON.parse(pc.envelope);
      } catch (e) {
        return error(400, `dsse: envelope is not JSON: ${e.message}`);
      }
      const verifiers = pc.verifiers || [];
      if (!verifiers.length || !Array.isArray(env.signatures) || !env.signatures.length) {
        return error(400, 'dsse: envelope signatures and verifiers are required');
      }
      entry = {
        apiVersion: entry.apiVersion || '0.0.1',
        kind: 'dsse',
        spec: {
          envelopeHash: { algorithm: 'sha256', value: sha256(Buffer.from(pc.envelope)).toString('hex') },
          payloadHash: { algorithm: 'sha256', value: sha256(Buffer.from(env.payload || '', 'base64')).toString('hex') },
          signatures: env.signatures.map((s, i) => ({ signature: s.sig, verifier: verifiers[Math.min(i, verifiers.length - 1)] })),
        },
      };
    }
    const res = await rekorFn(JSON.stringify(entry));
    if (res.statusCode >= 400) return error(res.statusCode, String(res.response));
    return { status: res.statusCode, body: Buffer.from(res.response), headers: { 'content-type': 'application/json' } };
  };
}

// ---------------------------------------------------------------- trust config

function trustConfig({ url, start, ca, ctlog, tsa, rekorV1Spki, rekorV2, v2First }) {
  const validFor = { start };
  const pub = (raw) => ({ rawBytes: b64(raw), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor });
  const tlogV1 = { baseUrl: url, hashAlgorithm: 'SHA2_256', publicKey: pub(rekorV1Spki), logId: { keyId: b64(sha256(rekorV1Spki)) }, operator: `${OPERATOR}/rekor-v1` };
  const tlogV2 = { baseUrl: url, hashAlgorithm: 'SHA2_256', publicKey: pub(rekorV2.spki), logId: { keyId: b64(rekorV2.keyId) }, operator: `${OPERATOR}/rekor-v2` };
  const svcV1 = { url, majorApiVersion: 1, validFor, operator: `${OPERATOR}/rekor-v1` };
  const svcV2 = { url, majorApiVersion: 2, validFor, operator: `${OPERATOR}/rekor-v2` };
  return {
    mediaType: 'application/vnd.dev.sigstore.clienttrustconfig.v0.1+json',
    trustedRoot: {
      mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
      tlogs: [tlogV1, tlogV2],
      certificateAuthorities: [{
        subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
        uri: url,
        certChain: { certificates: [{ rawBytes: b64(ca.rootCertificate) }] },
        validFor,
        operator: OPERATOR,
      }],
      ctlogs: [{
        baseUrl: `${url}/ct`,
        hashAlgorithm: 'SHA2_256',
        publicKey: pub(ctlog.publicKey),
        logId: { keyId: b64(ctlog.logID) },
        operator: OPERATOR,
      }],
      timestampAuthorities: [{
        subject: { organization: 'sigstore.mock', commonName: 'tsa' },
        uri: `${url}/api/v1/timestamp`,
        certChain: { certificates: [{ rawBytes: b64(tsa.intCertificate) }, { rawBytes: b64(tsa.rootCertificate) }] },
        validFor,
        operator: OPERATOR,
      }],
    },
    signingConfig: {
      mediaType: 'application/vnd.dev.sigstore.signingconfig.v0.2+json',
      caUrls: [{ url, majorApiVersion: 1, validFor, operator: OPERATOR }],
      oidcUrls: [],
      rekorTlogUrls: v2First ? [svcV2, svcV1] : [svcV1, svcV2],
      rekorTlogConfig: { selector: 'ANY' },
      tsaUrls: [{ url: `${url}/api/v1/timestamp`, majorApiVersion: 1, validFor, operator: OPERATOR }],
      tsaConfig: { selector: 'ANY' },
    },
  };
}

function writeAtomic(file, text) {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

function pem(der) {
  const lines = b64(der).match(/.{1,64}/g).join('\n');
  return `-----BEGIN CERTIFICATE-----\n${lines}\n-----END CERTIFICATE-----\n`;
}

// ---------------------------------------------------------------- server

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`error: ${e.message}\n`);
    process.exit(2);
  }

  const server = http.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, '127.0.0.1', resolve);
  });
  const port = server.address().port;
  const url = `http://127.0.0.1:${port}`;
  const start = new Date(Date.now() - 60 * 1000).toISOString();

  const ctlog = await mock.initializeCTLog(newKeyPair());
  const ca = await mock.initializeCA(newKeyPair(), ctlog);
  const rekorV1Keys = newKeyPair();
  const tlog = await mock.initializeTLog(url, rekorV1Keys);
  const tsa = await mock.initializeTSA(newKeyPair());
  const rekorV2 = new RekorV2(newKeyPair(), `127.0.0.1:${port}/rekor-v2`);

  const fulcio = fulcioAdapter(mock.fulcioHandler(ca, { subjectClaim: SAN_CLAIM }).fn);
  const rekorV1 = rekorV1Adapter(mock.rekorHandler(tlog).fn);
  const timestamp = tsaAdapter(tsa, mock.tsaHandler(tsa).fn);

  const faults = [];
  const requests = [];
  const random = mulberry32(opts.faultSeed);

  const admin = {
    'POST /__admin/faults': (raw) => {
      let rule;
      try {
        rule = JSON.parse(raw.toString('utf8') || '{}');
      } catch (e) {
        return error(400, `fault rule is not JSON: ${e.message}`);
      }
      const added = {
        status: rule.status === undefined ? 503 : Number(rule.status),
        count: rule.count === undefined ? 1 : Number(rule.count),
        path_prefix: rule.path_prefix || '',
        method: rule.method ? String(rule.method).toUpperCase() : null,
        delay_ms: Number(rule.delay_ms || 0),
        drop: Boolean(rule.drop),
        retry_after: rule.retry_after === undefined ? null : String(rule.retry_after),
        body: rule.body === undefined ? null : rule.body,
      };
      faults.push(added);
      return json(201, added);
    },
    'GET /__admin/faults': () => json(200, faults.filter((f) => f.count > 0)),
    'DELETE /__admin/faults': () => { faults.length = 0; return json(200, { cleared: true }); },
    'GET /__admin/requests': () => json(200, requests),
    'DELETE /__admin/requests': () => { requests.length = 0; return json(200, { cleared: true }); },
  };

  const routes = {
    'GET /healthz': async () => json(200, { ok: true }),
    'POST /api/v2/signingCert': fulcio,
    'GET /api/v2/trustBundle': async () => json(200, { chains: [{ certificates: [pem(ca.rootCertificate)] }] }),
    'POST /api/v1/log/entries': rekorV1,
    'POST /api/v2/log/entries': async (req, raw) => {
      let request;
      try {
        request = JSON.parse(raw.toString('utf8'));
        return json(201, rekorV2.add(request));
      } catch (e) {
        return error(400, e.message);
      }
    },
    'GET /api/v1/log': async () => json(200, { treeSize: 0, rootHash: '', signedTreeHead: '', treeID: '0' }),
    'POST /api/v1/timestamp': timestamp,
    'GET /api/v1/timestamp/certchain': async () => ({
      status: 200,
      body: Buffer.from(pem(tsa.intCertificate) + pem(tsa.rootCertificate)),
      headers: { 'content-type': 'application/pem-certificate-chain' },
    }),
  };
  const rekorEntryPaths = new Set(['/api/v1/log/entries', '/api/v2/log/entries']);

  function takeFault(method, pathname) {
    for (const f of faults) {
      if (f.count <= 0) continue;
      if (f.method && f.method !== method) continue;
      if (!pathname.startsWith(f.path_prefix)) continue;
      f.count -= 1;
      return f;
    }
    return null;
  }

  async function handle(req, raw) {
    const pathname = new URL(req.url, url).pathname;
    const key = `${req.method} ${pathname}`;
    if (admin[key]) return admin[key](raw);
    if (opts.delayMs) await sleep(opts.delayMs);
    const fault = takeFault(req.method, pathname);
    if (fault) {
      if (fault.delay_ms) await sleep(fault.delay_ms);
      if (fault.drop) return { drop: true };
      if (fault.status) {
        const headers = fault.retry_after === null ? {} : { 'retry-after': fault.retry_after };
        if (fault.body !== null) {
          const text = typeof fault.body === 'string' ? fault.body : JSON.stringify(fault.body);
          return { status: fault.status, body: Buffer.from(text), headers: { 'content-type': 'application/json', ...headers } };
        }
        return { ...error(fault.status, `injected fault (${fault.status})`), headers: { 'content-type': 'application/json', ...headers } };
      }
    }
    if (opts.faultRate > 0 && random() < opts.faultRate) return error(503, 'injected random fault (--fault-rate)');
    const route = routes[key];
    if (!route) {
      const known = Object.keys(routes).some((k) => k.endsWith(` ${pathname}`));
      return known ? error(405, `method ${req.method} not allowed`) : error(404, `no route for ${pathname}`);
    }
    if (opts.rekorDelayMs && req.method === 'POST' && rekorEntryPaths.has(pathname)) await sleep(opts.rekorDelayMs);
    return route(req, raw);
  }

  server.on('request', (req, res) => {
    const started = Date.now();
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(c);
    });
    req.on('end', async () => {
      const raw = Buffer.concat(chunks);
      let out;
      try {
        out = await handle(req, raw);
      } catch (e) {
        out = error(500, `stand-in error: ${e && e.stack ? e.stack : e}`);
      }
      const pathname = new URL(req.url, url).pathname;
      if (!pathname.startsWith('/__admin/')) {
        if (requests.length >= MAX_LOG) requests.shift();
        requests.push({ method: req.method, path: pathname, status: out.drop ? 0 : out.status, ms: Date.now() - started });
      }
      if (opts.verbose) process.stderr.write(`${req.method} ${req.url} -> ${out.drop ? 'dropped' : out.status}\n`);
      if (out.drop) {
        req.socket.destroy();
        return;
      }
      res.writeHead(out.status, { ...out.headers, 'content-length': out.body.length });
      res.end(out.body);
    });
  });

  const args = { url, start, ca, ctlog, tsa, rekorV1Spki: spkiDer(rekorV1Keys.publicKey), rekorV2 };
  if (opts.trustConfigOut) writeAtomic(opts.trustConfigOut, JSON.stringify(trustConfig({ ...args, v2First: false }), null, 2));
  if (opts.trustConfigV2Out) writeAtomic(opts.trustConfigV2Out, JSON.stringify(trustConfig({ ...args, v2First: true }), null, 2));

  const stop = () => {
    server.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (opts.exitOnStdinEof) {
    process.stdin.on('end', stop);
    process.stdin.on('error', stop);
    process.stdin.resume();
  }

  process.stdout.write(JSON.stringify({
    ready: true,
    port,
    url,
    pid: process.pid,
    trust_config: opts.trustConfigOut,
    trust_config_v2: opts.trustConfigV2Out,
  }) + '\n');
}

main().catch((e) => {
  process.stderr.write(`error: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
