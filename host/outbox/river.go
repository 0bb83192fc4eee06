package outbox

import (
	"fmt"
	"io/fs"
	"strings"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/jifu-open/jifu/host/database"
)

// RiverMigrations is River's own schema (river_job, river_leader, river_queue
// and the rest), as a goose migration set named "river": one goose version
// per River migration of the pinned module version, built at start-up from
// the SQL that River's pgx driver embeds, so nothing is copied by hand and a
// River upgrade brings its new migrations with it. Each version also records
// itself in river_migration, the table River's own migrator reads, so
// `river migrate-get`/rivermigrate.Validate agree with goose. docs/RATIONALE.md
// says why this is a goose set rather than a call to rivermigrate.
var RiverMigrations = database.MigrationSet{Name: "river", FS: riverFS()}

// riverFS renders River's main migration line as goose SQL files.
func riverFS() fs.FS {
	m, err := rivermigrate.New[pgx.Tx](riverpgxv5.New(nil), nil)
	if err != nil {
		panic(fmt.Sprintf("outbox: river migrator: %v", err))
	}
	files := fstest.MapFS{}
	for _, v := range m.AllVersions() {
		// Named by version only: River's names ("pending and more") read
		// like a state in `jifu migrate status`.
		files[fmt.Sprintf("%05d_river.sql", v.Version)] = &fstest.MapFile{
			Data: []byte(gooseRiverFile(v.Version, v.SQLUp, v.SQLDown)),
		}
	}
	return files
}

// gooseRiverFile wraps one River migration for goose. River's SQL holds
// PL/pgSQL bodies with semicolons, so each direction is one statement block
// (pgx sends an argument-less statement with the simple protocol, which runs
// several commands). The schema template marker is dropped: River lives in
// the search path's schema, like every other table of the platform.
func gooseRiverFile(version int, up, down string) string {
	up = strings.ReplaceAll(up, "/* TEMPLATE: schema */", "")
	down = strings.ReplaceAll(down, "/* TEMPLATE: schema */", "")
	// River's migrator records versions in river_migration: 001 creates the
	// table with (version), 005 rebuilds it keyed by (line, version).
	record := fmt.Sprintf("INSERT INTO river_migration (line, version) VALUES ('main', %d);", version)
	forget := fmt.Sprintf("DELETE FROM river_migration WHERE line = 'main' AND version = %d;", version)
	if version < 5 {
		record = fmt.Sprintf("INSERT INTO river_migration (version) VALUES (%d);", version)
		forget = fmt.Sprintf("DELETE FROM river_migration WHERE version = %d;", version)
	}
	if version == 1 {
		forget = "" // the down migration drops the table
	}
	var b strings.Builder
	b.WriteString("-- +goose Up\n-- +goose StatementBegin\n")
	b.WriteString(strings.TrimSpace(up))
	b.WriteString("\n;\n" + record + "\n-- +goose StatementEnd\n\n-- +goose Down\n-- +goose StatementBegin\n")
	if forget != "" && version != 5 {
		b.WriteString(forget + "\n")
	}
	b.WriteString(strings.TrimSpace(down))
	b.WriteString("\n;\n")
	if version == 5 {
		// 005's down rebuilds the old (version) table from the new one: forget
		// afterwards, in the old shape.
		b.WriteString("DELETE FROM river_migration WHERE version = 5;\n")
	}
	b.WriteString("-- +goose StatementEnd\n")
	return b.String()
}
