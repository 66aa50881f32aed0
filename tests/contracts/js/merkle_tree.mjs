// Reads {values, types} JSON on stdin; prints the root and proofs @openzeppelin/merkle-tree computes.
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const { values, types, dump } = JSON.parse(Buffer.concat(chunks).toString());
if (dump) {
  const tree = StandardMerkleTree.load(dump);
  tree.validate();
  const proofs = [...tree.entries()].map(([i, v]) => tree.verify(i, tree.getProof(i)));
  console.log(JSON.stringify({ root: tree.root, verified: proofs }));
} else {
  const tree = StandardMerkleTree.of(values, types);
  const proofs = [...tree.entries()].map(([i]) => tree.getProof(i));
  console.log(JSON.stringify({ root: tree.root, proofs }));
}
