import { Migration } from '@mikro-orm/migrations'

export class Migration20261123000000CreateUsers extends Migration {
  override async up (): Promise<void> {
    this.addSql(`create table "users" (
      "id" uuid not null primary key,
      "email" varchar(254) not null,
      "name" varchar(200) null,
      "password_hash" varchar(255) not null,
      "roles" text[] not null default '{}',
      "created_at" timestamptz not null,
      "updated_at" timestamptz not null
    );`)
    // Stored emails are lower-case; the unique index on lower() also guards rows written by hand.
    this.addSql('create unique index "users_email_unique" on "users" (lower("email"));')
  }

  override async down (): Promise<void> {
    this.addSql('drop table if exists "users";')
  }
}
