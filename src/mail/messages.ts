import type { Mail } from './mailer.js'

// Plain text only: nothing from the user (such as the name) is put into markup, and every mail
// client shows it. Links are absolute, built from APP_URL, never from a request's Host header.

/** The link of a mailed token: `<appUrl>/<page>?token=…` (the token is base64url: no escaping needed). */
export function linkTo (appUrl: string, page: 'verify-email' | 'reset-password', token: string): string {
  return `${appUrl}/${page}?token=${token}`
}

export function verificationMail (to: string, link: string): Mail {
  return {
    to,
    subject: 'Confirm your email address',
    text: [
      'Hello,',
      '',
      'Please confirm that this address belongs to your account by opening this link within 24 hours:',
      '',
      link,
      '',
      'If you did not create an account, ignore this mail: nothing happens without the link.'
    ].join('\n')
  }
}

export function passwordResetMail (to: string, link: string): Mail {
  return {
    to,
    subject: 'Reset your password',
    text: [
      'Hello,',
      '',
      'Someone asked to reset the password of the account for this address. To choose a new',
      'password, open this link within 30 minutes. It works once, and only the newest link you were sent works:',
      '',
      link,
      '',
      'If it was not you, ignore this mail: your password stays as it is.'
    ].join('\n')
  }
}

/** OWASP Forgot Password Cheat Sheet: tell the owner when the password was reset (never the password). */
export function passwordChangedMail (to: string): Mail {
  return {
    to,
    subject: 'Your password was reset',
    text: [
      'Hello,',
      '',
      'The password of your account was just reset with a link mailed to this address, and every',
      'session of the account was signed out.',
      '',
      'If this was not you, reset your password again at once and check the security of this mailbox.'
    ].join('\n')
  }
}
