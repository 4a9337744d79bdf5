import { readFile } from 'node:fs/promises';
import { Ajv } from 'ajv';
import t from 'tap';
import { parse } from 'yaml';
import { renderConfigJsonSchema } from '../../src/config/json-schema.js';
import { ANNOTATION_KEYWORDS } from '../../src/config/validate.js';

const committed = new URL('../../config/authgate.schema.json', import.meta.url);

t.test('config/authgate.schema.json is exactly what `npm run schema` generates', async (t) => {
  const onDisk = await readFile(committed, 'utf8');
  t.equal(onDisk, renderConfigJsonSchema(), 'run `npm run schema` and commit the result');
  t.equal(renderConfigJsonSchema(), renderConfigJsonSchema(), 'stable output');
});

t.test('the published schema works on its own with a standard validator', async (t) => {
  const schema = JSON.parse(await readFile(committed, 'utf8')) as Record<string, unknown>;
  t.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#');
  const ajv = new Ajv({ allErrors: true, strict: true, discriminator: true });
  ajv.addVocabulary([...ANNOTATION_KEYWORDS]);
  const validate = ajv.compile(schema);
  const yaml = await readFile(new URL('./fixtures/valid/authgate.yaml', import.meta.url), 'utf8');
  // The fixture with its ${VAR}s replaced by plausible literals.
  const data = parse(yaml.replaceAll('"${UPSTREAM_TIMEOUT}"', '45s').replaceAll('${COUNT}', '3').replaceAll('${WEBSOCKET}', 'true').replace(/\$\{[A-Z_]+\}/g, 'https://x.example'));
  t.ok(validate(data), JSON.stringify(validate.errors));
  t.notOk(validate({ routes: [], nope: 1 }), 'unknown keys are refused');
});
