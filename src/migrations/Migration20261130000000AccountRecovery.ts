import { Migration } from '@mikro-orm/migrations'

/** Email verification and password reset: the user's verified flag, and the mailed links' tokens. */
export class Migration20261130000000AccountRecovery extends Migration {
  override async up (): Promise<void> {
    this.addSql('alter table "users" add column "email_verified" boolean not null default false;')
    // Only a SHA-256 of each token is kept: a copy of this table lets nobody use a link.
    this.addSql(`create table "link_tokens" (
      "id" uuid not null primary key,
      "user_id" uuid not null references "users" ("id") on delete cascade,
      "purpose" varchar(32) not null check ("purpose" in ('verify_email', 'reset_password')),
      "token_hash" char(64) not null,
      "email" varchar(254) not null,
      "created_at" timestamptz not null,
      "expires_at" timestamptz not null,
      "used_at" timestamptz null,
      "superseded_at" timestamptz null
    );`)
    this.addSql('create unique index "link_tokens_token_hash_unique" on "link_tokens" ("token_hash");')
    // Superseding looks up a user's live tokens of one purpose.
    this.addSql('create index "link_tokens_user_purpose_index" on "link_tokens" ("user_id", "purpose");')
  }

  override async down (): Promise<void> {
    this.addSql('drop table if exists "link_tokens";')
    this.addSql('alter table "users" drop column if exists "email_verified";')
  }
}
