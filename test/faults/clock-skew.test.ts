// The app's clock and Redis's disagree by 10 s, either way (two hosts without good time sync). The
// late-write guard compares deadlines with Redis's clock, so the store sets them in Redis's time:
// logins and refreshes work, and a write that reaches a resumed Redis late is still dropped.
import t from 'tap'
import { expectRefreshWorks } from '../flows/support.js'
import { registerAndLogin } from '../helper.js'
import { appWithHungWrites, expectLateRotationDropped } from './hung-writes.js'
import { startRedisServer } from './redis-server.js'

// Well past the write deadline (2.5 s), so that without the offset the case ahead would apply a
// write that arrives 5 s late (deadline plus skew: 12.5 s), and the case behind refuse every write.
const SKEW_MS = 10_000

for (const skew of [-SKEW_MS, SKEW_MS]) {
  t.test(`the app's clock ${skew > 0 ? 'ahead of' : 'behind'} Redis's by ${SKEW_MS / 1000} s: writes work, and late ones are still dropped`, async t => {
    // Before the store is made, so it meets the skew from its first measurement on.
    const realNow = Date.now
    Date.now = () => realNow() + skew
    t.teardown(() => { Date.now = realNow })

    const server = await startRedisServer(t)
    const hung = await appWithHungWrites(t, server)
    const { userId, tokens } = await registerAndLogin(hung.app)
    const rotated = await expectRefreshWorks(t, hung.app, tokens.refresh_token, 'a refresh')
    // Hung for less than the deadline plus the skew.
    await expectLateRotationDropped(t, server, hung, userId, rotated.refresh_token)
  })
}
