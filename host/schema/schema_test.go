package schema_test

import (
	"context"
	"testing"

	"github.com/jifu-open/jifu/host/database"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/schema"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestSets(t *testing.T) {
	want := []string{"kv", "audit", "config"}
	sets := schema.Sets()
	if len(sets) < len(want) {
		t.Fatalf("Sets() has %d sets, want at least %d", len(sets), len(want))
	}
	for i, name := range want {
		if sets[i].Name != name {
			t.Errorf("Sets()[%d] = %q, want %q (never reorder sets)", i, sets[i].Name, name)
		}
	}
}

// TestAllApplied checks every migration of every set applies cleanly: the
// package's database is a clone of the migrated template.
func TestAllApplied(t *testing.T) {
	st, err := database.Status(context.Background(), dbtest.URL(t), schema.Sets())
	if err != nil {
		t.Fatal(err)
	}
	if len(st) == 0 {
		t.Fatal("no migrations at all")
	}
	for _, s := range st {
		if !s.Applied {
			t.Errorf("%s/%s is pending", s.Set, s.File)
		}
	}
}
