package protocol

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"testing"

	"github.com/heraldrt/herald/internal/testkit"
)

// declaredCodes finds every Error and Disconnect literal with a Code in the
// package-level variables of codes.go, so that a code added there is checked
// without editing this test.
func declaredCodes(t *testing.T) (errs map[uint32]*Error, closes map[uint16]Disconnect) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "codes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	errs, closes = map[uint32]*Error{}, map[uint16]Disconnect{}
	var vars []ast.Node
	for _, d := range f.Decls {
		if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.VAR {
			vars = append(vars, g)
		}
	}
	inspect := func(n ast.Node) bool {
		lit, ok := n.(*ast.CompositeLit)
		if !ok {
			return true
		}
		typ, ok := lit.Type.(*ast.Ident)
		if !ok {
			return true
		}
		fields := map[string]string{}
		for _, el := range lit.Elts {
			if kv, ok := el.(*ast.KeyValueExpr); ok {
				fields[kv.Key.(*ast.Ident).Name] = literalValue(t, kv.Value)
			}
		}
		if _, ok := fields["Code"]; !ok {
			return true
		}
		code, err := strconv.ParseUint(fields["Code"], 10, 16)
		if err != nil {
			t.Fatalf("codes.go: %s code %q: %v", typ.Name, fields["Code"], err)
		}
		switch typ.Name {
		case "Error":
			errs[uint32(code)] = &Error{Code: uint32(code), Message: fields["Message"]}
		case "Disconnect":
			closes[uint16(code)] = Disconnect{Code: uint16(code), Reason: fields["Reason"], Reconnect: fields["Reconnect"] == "true"}
		}
		return true
	}
	for _, v := range vars {
		ast.Inspect(v, inspect)
	}
	if len(errs) == 0 || len(closes) == 0 {
		t.Fatalf("found %d error codes and %d close codes in codes.go", len(errs), len(closes))
	}
	return errs, closes
}

func literalValue(t *testing.T, e ast.Expr) string {
	switch v := e.(type) {
	case *ast.BasicLit:
		if v.Kind == token.STRING {
			s, err := strconv.Unquote(v.Value)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		return v.Value
	case *ast.Ident:
		return v.Name
	}
	t.Fatalf("codes.go: unexpected field value %T", e)
	return ""
}

// docTable maps each code in the first column of the tables under heading
// in docs/protocol.md to its row's cells.
func docTable(t *testing.T, doc, heading string) map[string][]string {
	t.Helper()
	table, err := testkit.MarkdownTable(doc, heading)
	if err != nil {
		t.Fatalf("docs/protocol.md: %v", err)
	}
	rows := map[string][]string{}
	for _, cells := range table {
		if _, err := strconv.Atoi(cells[0]); err == nil {
			rows[cells[0]] = cells
		}
	}
	return rows
}

// TestCodesAreDocumented checks that docs/protocol.md lists every error and
// close code clients can receive, as the code defines it (HTTP status,
// reason, whether to reconnect), and no code that does not exist.
func TestCodesAreDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	errs, closes := declaredCodes(t)

	errRows := docTable(t, doc, "## Error codes")
	for code, e := range errs {
		row, ok := errRows[fmt.Sprint(code)]
		switch {
		case !ok:
			t.Errorf("error %d (%s) is not in the error code table", code, e.Message)
		case len(row) != 4:
			t.Errorf("error %d: row %q, want code, name, meaning and HTTP status", code, row)
		case row[3] != fmt.Sprint(HTTPStatus(e)):
			t.Errorf("error %d: documented HTTP status %s, answered with %d", code, row[3], HTTPStatus(e))
		}
	}
	for code := range errRows {
		if n, _ := strconv.ParseUint(code, 10, 32); errs[uint32(n)] == nil {
			t.Errorf("error code table lists %s, which codes.go does not define", code)
		}
	}

	closeRows := docTable(t, doc, "## Close codes")
	for code, d := range closes {
		row, ok := closeRows[fmt.Sprint(code)]
		reconnect := map[bool]string{true: "yes", false: "no"}[d.Reconnect]
		switch {
		case !ok:
			t.Errorf("close code %d (%s) is not in the close code table", code, d.Reason)
		case len(row) != 4:
			t.Errorf("close code %d: row %q, want code, reason, reconnect and when", code, row)
		case row[1] != d.Reason || row[2] != reconnect:
			t.Errorf("close code %d: documented as %q, reconnect %s; sent as %q, reconnect %s", code, row[1], row[2], d.Reason, reconnect)
		}
		if (code < 4500) != d.Reconnect {
			t.Errorf("close code %d: reconnect %v, but codes below 4500 say reconnect and the others do not", code, d.Reconnect)
		}
	}
	for code := range closeRows {
		if n, _ := strconv.ParseUint(code, 10, 16); closes[uint16(n)].Code == 0 {
			t.Errorf("close code table lists %s, which codes.go does not define", code)
		}
	}
}
