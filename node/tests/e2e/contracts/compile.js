// Compiles Store.sol and Token.sol with solc-js (npm `solc@0.8.28`) into
// <Name>.json ({compiler, abi, bytecode}). Run from this directory:
//   npm install solc@0.8.28 && node compile.js
const fs = require('fs');
const solc = require('solc');
const names = ['Store', 'Token'];
const input = {
  language: 'Solidity',
  sources: Object.fromEntries(names.map((n) => [`${n}.sol`, { content: fs.readFileSync(`${n}.sol`, 'utf8') }])),
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: 'cancun',
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
  },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
for (const e of out.errors || []) {
  console.error(e.formattedMessage);
  if (e.severity === 'error') process.exit(1);
}
for (const n of names) {
  const c = out.contracts[`${n}.sol`][n];
  const json = {
    compiler: `solc-js ${solc.version()}`,
    settings: { optimizer: { enabled: true, runs: 200 }, evmVersion: 'cancun' },
    abi: c.abi,
    bytecode: '0x' + c.evm.bytecode.object,
    deployedBytecode: '0x' + c.evm.deployedBytecode.object,
  };
  fs.writeFileSync(`${n}.json`, JSON.stringify(json, null, 1) + '\n');
  console.log(`${n}.json: ${c.evm.bytecode.object.length / 2} bytes of init code`);
}
