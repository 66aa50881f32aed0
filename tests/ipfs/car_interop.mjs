// CAR interop with @ipld/car (npm): `read FILE` prints roots and blocks (hash-checked here with the JS sha256);
// `write FILE` writes a CAR whose dag-cbor root links to two raw blocks, and prints what it wrote.
import fs from 'node:fs'
import { Readable } from 'node:stream'
import { CarReader, CarWriter } from '@ipld/car'
import * as dagCbor from '@ipld/dag-cbor'
import * as raw from 'multiformats/codecs/raw'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'

const [mode, file] = process.argv.slice(2)
if (mode === 'read') {
  const reader = await CarReader.fromBytes(fs.readFileSync(file))
  const blocks = []
  for await (const { cid, bytes } of reader.blocks()) {
    const digest = await sha256.digest(bytes)
    if (!equal(digest.digest, cid.multihash.digest)) throw new Error(`hash mismatch for ${cid}`)
    blocks.push({ cid: cid.toString(), size: bytes.length })
  }
  const roots = (await reader.getRoots()).map(String)
  console.log(JSON.stringify({ roots, blocks }))
} else if (mode === 'write') {
  const leaves = []
  for (const text of ['first leaf', 'second leaf']) {
    const bytes = raw.encode(new TextEncoder().encode(text))
    leaves.push({ cid: CID.create(1, raw.code, await sha256.digest(bytes)), bytes })
  }
  const rootBytes = dagCbor.encode({ name: 'twin', parts: leaves.map((l) => l.cid) })
  const root = { cid: CID.create(1, dagCbor.code, await sha256.digest(rootBytes)), bytes: rootBytes }
  const { writer, out } = CarWriter.create([root.cid])
  const done = new Promise((resolve, reject) => {
    Readable.from(out).pipe(fs.createWriteStream(file)).on('finish', resolve).on('error', reject)
  })
  for (const block of [root, ...leaves]) await writer.put(block)
  await writer.close()
  await done
  console.log(JSON.stringify({ root: root.cid.toString(), leaves: leaves.map((l) => l.cid.toString()) }))
} else {
  throw new Error('usage: car_interop.mjs read|write FILE')
}

function equal(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i])
}
