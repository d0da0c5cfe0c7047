package testkit

import (
	"fmt"
	"strings"
)

// MarkdownTable returns the body rows of the tables in doc's section under
// heading (a whole line, such as "## Limits"; the section ends at the next
// "## " heading), each row's cells trimmed; header and delimiter rows are
// left out. Tests use it to hold the
// documentation's tables of codes and limits to the code.
func MarkdownTable(doc, heading string) ([][]string, error) {
	_, section, ok := strings.Cut(doc, "\n"+heading+"\n")
	if !ok {
		return nil, fmt.Errorf("no %q section", heading)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var rows [][]string
	inTable := false
	for line := range strings.Lines(section) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			inTable = false
			continue
		}
		if !inTable {
			inTable = true
			continue // the header row
		}
		var cells []string
		for c := range strings.SplitSeq(strings.Trim(line, "|"), "|") {
			cells = append(cells, strings.TrimSpace(c))
		}
		if strings.HasPrefix(cells[0], "---") || strings.HasPrefix(cells[0], ":--") {
			continue
		}
		rows = append(rows, cells)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("no table rows under %q", heading)
	}
	return rows, nil
}
