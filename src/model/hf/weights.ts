/**
 * The tensors of a Hugging Face checkpoint folder as `save_pretrained` writes it: one
 * `model.safetensors`, or shards listed by `model.safetensors.index.json`.
 */
import { existsSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { asFloat32Record, readSafetensors, type Float32Record } from '../checkpoint';

export const HF_WEIGHTS_FILE = 'model.safetensors';
export const HF_WEIGHTS_INDEX = 'model.safetensors.index.json';

/** Every tensor of the folder as float32, by its key in the files. */
export async function loadHfTensors(folder: string): Promise<Float32Record> {
  const single = join(folder, HF_WEIGHTS_FILE);
  if (existsSync(single)) return asFloat32Record((await readSafetensors(single)).tensors, single);
  const indexPath = join(folder, HF_WEIGHTS_INDEX);
  if (!existsSync(indexPath)) throw new Error(`${folder}: neither ${HF_WEIGHTS_FILE} nor ${HF_WEIGHTS_INDEX} is there`);
  const index = JSON.parse(await fsp.readFile(indexPath, 'utf8')) as { weight_map?: Record<string, string> };
  if (!index.weight_map) throw new Error(`${indexPath}: field "weight_map" is missing`);
  const out: Float32Record = {};
  for (const file of new Set(Object.values(index.weight_map))) {
    const path = join(folder, file);
    Object.assign(out, asFloat32Record((await readSafetensors(path)).tensors, path));
  }
  return out;
}
