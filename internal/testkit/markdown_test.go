package testkit

import (
	"reflect"
	"testing"
)

func TestMarkdownTable(t *testing.T) {
	doc := "# Doc\n\n## Codes\n\nText.\n\n| code | meaning |\n| --- | --- |\n| 100 | one |\n|101| two |\n\n| other | table |\n| --- | --- |\n| x | y |\n\n## Next\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n"
	rows, err := MarkdownTable(doc, "## Codes")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"100", "one"}, {"101", "two"}, {"x", "y"}}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rows %q, want %q", rows, want)
	}
	if _, err := MarkdownTable(doc, "## Missing"); err == nil {
		t.Error("a missing section gave no error")
	}
	if _, err := MarkdownTable("\n## Empty\n\ntext\n", "## Empty"); err == nil {
		t.Error("a section without a table gave no error")
	}
}
