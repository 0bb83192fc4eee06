// Package schema lists the migration sets of every domain that keeps tables
// in the platform's database, in the order they are applied. The host
// migrates with it at start-up, and the test harness (host/database/dbtest)
// builds its template database from it.
//
//	err := database.Migrate(ctx, url, schema.Sets())
//
// A new domain appends its package's Migrations here. Because this package
// imports the domain packages, their tests that use dbtest must be external
// test packages (package kvstore_test), or the imports would cycle.
package schema

import (
	"github.com/jifu-open/jifu/host/audit"
	"github.com/jifu-open/jifu/host/bank/banksim"
	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/configstore"
	"github.com/jifu-open/jifu/host/database"
	"github.com/jifu-open/jifu/host/escrow"
	"github.com/jifu-open/jifu/host/funding"
	"github.com/jifu-open/jifu/host/kvstore"
	"github.com/jifu-open/jifu/host/ledger"
	"github.com/jifu-open/jifu/host/nonce"
	"github.com/jifu-open/jifu/host/notify"
	"github.com/jifu-open/jifu/host/outbox"
	"github.com/jifu-open/jifu/host/payment"
	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/openapi"
)

// Sets returns every domain's migration set, in application order. Later
// domains append; never reorder or rename a set (its name is its goose
// version table).
func Sets() []database.MigrationSet {
	return []database.MigrationSet{
		kvstore.Migrations,
		audit.Migrations,
		configstore.Migrations,
		ledger.Migrations,
		outbox.RiverMigrations, outbox.Migrations, nonce.Migrations,
		notify.Migrations, marketplace.Migrations,
		payment.Migrations,
		escrow.Migrations,
		openapi.Migrations,
		cardpay.Migrations,
		banksim.Migrations, funding.Migrations,
	}
}
