// Deploys Uniswap V3 (the npm packages' bytecode) to a local anvil chain at mainnet's addresses,
// so that Hummingbot Gateway's hard-coded mainnet contract addresses and mainnet's USDC/WETH
// 0.05 % pool address (0x88e6...5640) hold on the local chain exactly as on mainnet.
//
// Contracts are deployed normally and then moved: anvil_setCode copies the runtime code to the
// mainnet address (with self-address immutables rewritten) and the storage the constructor
// wrote is copied slot by slot (read from a prestate trace of the deployment).
//
// Usage: node deploy.js <rpc-url> <out.json>
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');
const { ethers } = require('ethers');

const MAINNET = {
  usdc: '0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48',
  weth: '0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2',
  factory: '0x1F98431c8aD98523631AE4a59f267346ea31F984',
  positionManager: '0xC36442b4a4522E871399CD717aBDD847Ab11FE88',
  pool: '0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640',
};
const FEE = 500;
const PRICE_USDC_PER_WETH = 3000n;

const artifact = (rel) => JSON.parse(fs.readFileSync(require.resolve(rel), 'utf8'));
const core = (name) => artifact(`@uniswap/v3-core/artifacts/contracts/${name}.sol/${name}.json`);
const periphery = (rel) => artifact(`@uniswap/v3-periphery/artifacts/contracts/${rel}.json`);

function compileStableToken() {
  const source = fs.readFileSync(path.join(__dirname, 'contracts', 'StableToken.sol'), 'utf8');
  const input = {
    language: 'Solidity',
    sources: { 'StableToken.sol': { content: source } },
    settings: {
      optimizer: { enabled: true, runs: 200 },
      outputSelection: { '*': { '*': ['abi', 'evm.deployedBytecode.object'] } },
    },
  };
  const out = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (out.errors || []).filter((e) => e.severity === 'error');
  if (errors.length) throw new Error(errors.map((e) => e.formattedMessage).join('\n'));
  const c = out.contracts['StableToken.sol'].StableToken;
  return { abi: c.abi, runtime: '0x' + c.evm.deployedBytecode.object };
}

function isqrt(n) {
  if (n < 2n) return n;
  let x = n;
  let y = (x + 1n) / 2n;
  while (y < x) {
    x = y;
    y = (x + n / x) / 2n;
  }
  return x;
}

async function main() {
  const [rpc, outFile] = process.argv.slice(2);
  const provider = new ethers.providers.JsonRpcProvider(rpc);
  const signer = provider.getSigner(0); // anvil's unlocked dev account: no key in this file
  const deployer = await signer.getAddress();
  await provider.send('anvil_setBalance', [deployer, ethers.utils.hexValue(10n ** 24n)]);

  async function deploy(abi, bytecode, args) {
    const contract = await new ethers.ContractFactory(abi, bytecode, signer).deploy(...args, {
      gasLimit: 29_000_000,
    });
    const receipt = await contract.deployTransaction.wait();
    return { contract, receipt };
  }

  // Deploy, then move the code and the constructor's storage to `target`.
  async function deployAt(target, abi, bytecode, args = []) {
    const { contract, receipt } = await deploy(abi, bytecode, args);
    const from = contract.address.slice(2).toLowerCase();
    const code = (await provider.getCode(contract.address)).split(from).join(target.slice(2).toLowerCase());
    await provider.send('anvil_setCode', [target, code]);
    const trace = await provider.send('debug_traceTransaction', [
      receipt.transactionHash,
      { tracer: 'prestateTracer', tracerConfig: { diffMode: true } },
    ]);
    const written = Object.entries(trace.post).find(([a]) => a.toLowerCase() === contract.address.toLowerCase());
    for (const [slot, value] of Object.entries((written && written[1].storage) || {})) {
      await provider.send('anvil_setStorageAt', [target, slot, value]);
    }
    return new ethers.Contract(target, abi, signer);
  }

  const stable = compileStableToken();
  await provider.send('anvil_setCode', [MAINNET.usdc, stable.runtime]);
  const usdc = new ethers.Contract(MAINNET.usdc, stable.abi, signer);

  const weth9 = artifact('@uniswap/v2-periphery/build/WETH9.json');
  const weth = await deployAt(MAINNET.weth, weth9.abi, '0x' + weth9.evm.bytecode.object);
  const factoryArt = core('UniswapV3Factory');
  const factory = await deployAt(MAINNET.factory, factoryArt.abi, factoryArt.bytecode);
  // NonfungiblePositionManager never calls its token descriptor except in tokenURI, which
  // neither Gateway nor the tests read: a placeholder address keeps the deployment small.
  const npmArt = periphery('NonfungiblePositionManager.sol/NonfungiblePositionManager');
  const npm = await deployAt(MAINNET.positionManager, npmArt.abi, npmArt.bytecode, [
    MAINNET.factory,
    MAINNET.weth,
    '0x0000000000000000000000000000000000000001',
  ]);
  const routerArt = periphery('SwapRouter.sol/SwapRouter');
  const router = (await deploy(routerArt.abi, routerArt.bytecode, [MAINNET.factory, MAINNET.weth])).contract;

  // token0 is USDC (lower address); price = token1 per token0 in raw units.
  const [token0, token1] = [MAINNET.usdc, MAINNET.weth].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
  if (token0 !== MAINNET.usdc) throw new Error('USDC must be token0');
  const sqrtPriceX96 = isqrt((10n ** 18n << 192n) / (PRICE_USDC_PER_WETH * 10n ** 6n));
  await (await npm.createAndInitializePoolIfNecessary(token0, token1, FEE, sqrtPriceX96.toString(), { gasLimit: 6_000_000 })).wait();
  const pool = await factory.getPool(token0, token1, FEE);
  if (pool.toLowerCase() !== MAINNET.pool.toLowerCase()) {
    throw new Error(`pool landed at ${pool}, not mainnet's ${MAINNET.pool}: init-code hash or addresses differ`);
  }

  // Deep seed liquidity: a full-range position and a concentrated one around the price. The
  // first mint into a fresh pool also costs more than Gateway's fixed 600k open gas limit, so
  // it must not be Gateway's.
  await (await weth.deposit({ value: ethers.utils.parseEther('2000') })).wait();
  await (await usdc.mint(deployer, 6_000_000n * 10n ** 6n)).wait();
  await (await weth.approve(npm.address, ethers.constants.MaxUint256)).wait();
  await (await usdc.approve(npm.address, ethers.constants.MaxUint256)).wait();
  const poolArt = core('UniswapV3Pool');
  const { tick } = await new ethers.Contract(pool, poolArt.abi, provider).slot0();
  const spacing = 10;
  const near = Math.floor(tick / spacing) * spacing;
  for (const [lower, upper] of [[-887270, 887270], [near - 2000, near + 2000]]) {
    await (await npm.mint({
      token0, token1, fee: FEE, tickLower: lower, tickUpper: upper,
      amount0Desired: 3_000_000n * 10n ** 6n, amount1Desired: ethers.utils.parseEther('1000'),
      amount0Min: 0, amount1Min: 0, recipient: deployer, deadline: 2n ** 40n,
    }, { gasLimit: 2_000_000 })).wait();
  }
  const out = {
    rpc, chainId: (await provider.getNetwork()).chainId, deployer, fee: FEE,
    usdc: MAINNET.usdc, weth: MAINNET.weth, factory: MAINNET.factory,
    positionManager: MAINNET.positionManager, pool, token0, token1, swapRouter: router.address,
    block: await provider.getBlockNumber(),
  };
  fs.writeFileSync(outFile, JSON.stringify(out, null, 2));
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
