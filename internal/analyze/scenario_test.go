package analyze_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/scanwarden/scanwarden/internal/scenariotest"
)

// TestScenarios runs every testdata/scenarios/*.txtar over the committed
// captures (see package scenariotest for the format).
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("../../testdata/scenarios/*.txtar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txtar")
		t.Run(name, func(t *testing.T) { scenariotest.Run(t, file, "../../testdata/captures") })
	}
}
