// Writes config/authgate.schema.json from the TypeBox schema (`npm run schema`). A test checks
// that the committed file equals this output, so the published schema cannot drift.
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { renderConfigJsonSchema } from '../src/config/json-schema.js';

const target = fileURLToPath(new URL('../config/authgate.schema.json', import.meta.url));
await writeFile(target, renderConfigJsonSchema());
console.log(`wrote ${target}`);
