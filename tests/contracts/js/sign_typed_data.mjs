// Signs EIP-712 typed data with ethers v6, as a browser wallet or a JS client of twinledger would.
// stdin: {"privateKey": "0x..", "domain": {...}, "types": {...}, "message": {...}}
// stdout: {"signature": "0x..", "signer": "0x..", "digest": "0x..", "domainSeparator": "0x.."}
import { TypedDataEncoder, Wallet } from "ethers";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const { privateKey, domain, types, message } = JSON.parse(Buffer.concat(chunks).toString("utf8"));

// ethers derives EIP712Domain from `domain` itself and rejects it among the types.
const primaryTypes = { ...types };
delete primaryTypes.EIP712Domain;

const wallet = new Wallet(privateKey);
const signature = await wallet.signTypedData(domain, primaryTypes, message);
process.stdout.write(
  JSON.stringify({
    signature,
    signer: wallet.address,
    digest: TypedDataEncoder.hash(domain, primaryTypes, message),
    domainSeparator: TypedDataEncoder.hashDomain(domain),
  }) + "\n",
);
