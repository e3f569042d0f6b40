import t from 'tap'

// CI's run is the first after `npm ci`. Without `tap build` first (package.json's pretest), tap
// starts that run's test processes with its ts-node loader as well as tsx: about half again as much
// CPU for the whole suite, with nothing failing.
t.test('test processes load TypeScript through tsx alone', async t => {
  const loaders = process.execArgv.filter(arg => arg.startsWith('--import') || arg.startsWith('--loader'))
  t.ok(loaders.some(arg => arg === '--import=tsx'), `tsx is loaded: ${loaders.join(' ')}`)
  t.notOk(loaders.some(arg => arg.includes('@tapjs/typescript') || arg.includes('ts-node')), `no ts-node loader: ${loaders.join(' ')}`)
})
