import neostandard from 'neostandard'

export default neostandard({
  ts: true,
  ignores: ['dist/**', 'coverage/**', '.data/**', '.tap/**', 'examples/*/node_modules/**', 'examples/*/dist/**']
})
