package tools_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// trialService is the contract file the scenarios edit.
const trialService = "proto/trialhub/trial/v1/trial_service.proto"

// TestBreakingGuard proves that tools/breaking.sh (make breaking) bites. Each scenario
// runs the guard in a throwaway git repository holding a copy of the contract, after
// editing the real proto files the way a careless change would: compatible changes pass,
// every kind of break fails and is named, including a break hidden by a later commit,
// an uncommitted break, and a break behind a commit that does not build.
func TestBreakingGuard(t *testing.T) {
	root, err := filepath.Abs("..") // go test runs in tools/
	if err != nil {
		t.Fatal(err)
	}
	for _, need := range []string{"buf.yaml", "proto", "tools/breaking.sh"} {
		if _, err := os.Stat(filepath.Join(root, need)); err != nil {
			t.Fatalf("repository root %s: %v", root, err)
		}
	}
	for _, tool := range []string{"git", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: %v", tool, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules/.bin/buf")); err != nil {
		t.Skipf("buf is not installed (run make tools): %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, ".buf-deps/protovalidate")); err != nil {
		t.Skipf("protovalidate's proto source is missing (run make proto-deps): %v", err)
	}

	t.Run("real repository passes", func(t *testing.T) {
		t.Parallel()
		if err := exec.Command("git", "-C", root, "cat-file", "-e", "HEAD:proto").Run(); err != nil {
			t.Skipf("HEAD of %s has no contract yet: %v", root, err)
		}
		out, code := runGuard(t, root, os.Environ())
		if code != 0 || !strings.Contains(out, "no breaking changes") {
			t.Fatalf("bash tools/breaking.sh in %s: exit %d, want 0:\n%s", root, code, out)
		}
	})

	for _, s := range []struct {
		name string
		run  func(r *tempRepo)
	}{
		{"new optional field passes", func(r *tempRepo) {
			r.edit(trialService, "message GetTrialRequest {\n", newOptionalField)
			r.commit("trial: GetTrialRequest.include_closed_sites")
			r.wantPass("1 commit(s) checked")
		}},
		{"new method passes", func(r *tempRepo) {
			r.edit(trialService, "service TrialService {\n", "service TrialService {\n"+newMethod)
			r.edit(trialService, "// CreateTrialRequest describes", newMethodMessages+"// CreateTrialRequest describes")
			r.commit("trial: CountEnrollments")
			r.wantPass("1 commit(s) checked")
		}},
		{"renumbered field fails", func(r *tempRepo) {
			r.edit(trialService, getTrialVersion+"2 [", getTrialVersion+"3 [")
			sha := r.commit("trial: renumber visit_schedule_version")
			r.wantBreak(r.label(sha), `Previously present field "2" with name "visit_schedule_version" on message "GetTrialRequest" was deleted`)
		}},
		{"changed field type fails", func(r *tempRepo) {
			r.edit(trialService,
				"  repeated Trial trials = 1;\n  // Token for the next page; empty when this is the last page.\n  string next_page_token = 2;",
				"  repeated Trial trials = 1;\n  // Token for the next page; empty when this is the last page.\n  int32 next_page_token = 2;")
			sha := r.commit("trial: next_page_token as a number")
			r.wantBreak(r.label(sha), `"next_page_token" on message "ListTrialsResponse" changed type from "string" to "int32"`)
		}},
		{"removed method fails", func(r *tempRepo) {
			r.cut(trialService, "  rpc RecordVisitCompletion(", "\n  }\n")
			sha := r.commit("trial: drop RecordVisitCompletion")
			r.wantBreak(r.label(sha), `Previously present RPC "RecordVisitCompletion" on service "TrialService" was deleted`)
		}},
		{"json_name set on a field fails", func(r *tempRepo) {
			r.edit(trialService, "  string query = 3 [\n", "  string query = 3 [\n    json_name = \"searchText\",\n")
			sha := r.commit("trial: ListTrialsRequest.query as searchText")
			r.wantBreak(r.label(sha), `"query" on message "ListTrialsRequest" changed option "json_name" from "query" to "searchText"`)
		}},
		{"renamed field (new JSON name) fails", func(r *tempRepo) {
			r.edit(trialService, "message GetTrialRequest {\n  // The trial to return (UUID).\n  string trial_id = 1 [",
				"message GetTrialRequest {\n  // The trial to return (UUID).\n  string trial_uuid = 1 [")
			sha := r.commit("trial: GetTrialRequest.trial_uuid")
			r.wantBreak(r.label(sha), `changed name from "trial_id" to "trial_uuid"`, `changed option "json_name" from "trialId" to "trialUuid"`)
		}},
		{"break hidden by a later commit fails", func(r *tempRepo) {
			// The second commit restores the field the first one deleted, so the tip
			// against the baseline is only a new field: just the per-commit walk sees
			// that clients built from the first commit were broken.
			base := r.git("rev-parse", "HEAD")
			r.cut(trialService, "  // The visit schedule version to return;", "  ];\n")
			broke := r.commit("trial: GetTrialRequest without visit_schedule_version")
			r.git("checkout", base, "--", trialService)
			r.edit(trialService, "message GetTrialRequest {\n", newOptionalField)
			harmless := r.commit("trial: GetTrialRequest.include_closed_sites")
			out := r.wantBreak(r.label(broke), `Previously present field "2" with name "visit_schedule_version" on message "GetTrialRequest" was deleted`)
			if strings.Contains(out, r.label(harmless)) {
				r.t.Errorf("the harmless commit was reported too:\n%s", out)
			}
			r.git("reset", "--soft", base)
			r.commit("trial: the same tip, squashed")
			r.wantPass("1 commit(s) checked")
		}},
		{"uncommitted break fails", func(r *tempRepo) {
			r.cut(trialService, "  rpc RecordVisitCompletion(", "\n  }\n")
			r.wantBreak("breaking change in uncommitted changes against HEAD", `Previously present RPC "RecordVisitCompletion"`)
		}},
		{"break behind a commit that does not build fails", func(r *tempRepo) {
			// A break made together with a syntax error, and the error fixed in the next
			// commit: neither commit may be skipped for not building.
			r.edit(trialService, getTrialVersion+"2 [", strings.Replace(getTrialVersion, "int32", "int64", 1)+"2 [")
			r.edit(trialService, "message GetTrialResponse {", "message GetTrialResponse {{")
			typo := r.commit("trial: wider visit_schedule_version")
			r.edit(trialService, "message GetTrialResponse {{", "message GetTrialResponse {")
			fix := r.commit("trial: fix a typo")
			r.wantBreak(r.label(typo)+": its contract is missing or does not build",
				r.label(fix), `"visit_schedule_version" on message "GetTrialRequest" changed type from "int32" to "int64"`)
		}},
		{"break listed in BREAKING_ACCEPTED passes", func(r *tempRepo) {
			r.cut(trialService, "  rpc RecordVisitCompletion(", "\n  }\n")
			sha := r.commit("trial: drop RecordVisitCompletion")
			r.wantBreak(r.label(sha))
			r.accept(sha, "RecordVisitCompletion was never released")
			r.commit("proto: accept the RecordVisitCompletion removal")
			r.wantPass("accepted break in " + strings.TrimPrefix(r.label(sha), "commit "))
		}},
		{"break accepted on a branch passes", func(r *tempRepo) {
			// On a branch the tree is also checked against the merge base with main,
			// which must start from the accepted break, not from before it.
			r.git("checkout", "-q", "-b", "feature")
			r.cut(trialService, "  rpc RecordVisitCompletion(", "\n  }\n")
			sha := r.commit("trial: drop RecordVisitCompletion")
			r.wantBreak(r.label(sha), "breaking change in branch feature against its merge base with main")
			r.accept(sha, "RecordVisitCompletion was never released")
			r.commit("proto: accept the RecordVisitCompletion removal")
			r.wantPass("accepted break in")
			r.edit(trialService, "  string query = 3 [\n", "  string query = 3 [\n    json_name = \"searchText\",\n")
			later := r.commit("trial: ListTrialsRequest.query as searchText")
			r.wantBreak(r.label(later), "breaking change in branch feature against the break accepted in")
		}},
		{"shallow clone without its history fails loudly", func(r *tempRepo) {
			r.edit(trialService, "message GetTrialRequest {\n", newOptionalField)
			r.commit("trial: GetTrialRequest.include_closed_sites")
			clone := r.shallowClone()
			r.git("-C", clone.dir, "remote", "remove", "origin")
			clone.wantGuard(2, []string{"this clone is shallow"})
		}},
		{"shallow clone fetches its history and checks every commit", func(r *tempRepo) {
			r.cut(trialService, "  rpc RecordVisitCompletion(", "\n  }\n")
			sha := r.commit("trial: drop RecordVisitCompletion")
			r.edit(trialService, "message GetTrialRequest {\n", newOptionalField)
			r.commit("trial: GetTrialRequest.include_closed_sites")
			clone := r.shallowClone()
			clone.wantBreak("fetched the whole history", r.label(sha))
		}},
		{"branch without main fails loudly", func(r *tempRepo) {
			r.git("checkout", "-q", "-b", "feature")
			r.git("branch", "-D", "main")
			r.wantGuard(2, []string{"neither main nor origin/main is present"})
		}},
	} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			s.run(newTempRepo(t, root))
		})
	}
}

// getTrialVersion is GetTrialRequest.visit_schedule_version up to its number (other
// messages have a field of that name too).
const getTrialVersion = "  // The visit schedule version to return; 0 returns the current version.\n  int32 visit_schedule_version = "

// newOptionalField adds a field to trialhub.trial.v1.GetTrialRequest.
const newOptionalField = `message GetTrialRequest {
  // Whether closed sites are returned too; false returns open sites only.
  optional bool include_closed_sites = 3;
`

// newMethod and newMethodMessages add trialhub.trial.v1.TrialService/CountEnrollments.
const (
	newMethod = `  // Counts the subjects ever enrolled in a trial, withdrawn ones included.
  rpc CountEnrollments(CountEnrollmentsRequest) returns (CountEnrollmentsResponse) {
    option idempotency_level = NO_SIDE_EFFECTS;
    option (trialhub.authz.v1.rule) = {
      roles: [
        ROLE_ADMIN,
        ROLE_ANALYST
      ]
      subject_from_token: false
    };
  }

`
	newMethodMessages = `// CountEnrollmentsRequest names the trial to count.
message CountEnrollmentsRequest {
  // The trial whose enrollments are counted (UUID).
  string trial_id = 1 [
    // Trial ids are UUIDs.
    (buf.validate.field).string.uuid = true
  ];
}

// CountEnrollmentsResponse is the trial's enrollment count.
message CountEnrollmentsResponse {
  // Subjects ever enrolled, withdrawn ones included.
  int64 enrolled = 1;
}

`
)

// tempRepo is a throwaway git repository with what the guard needs: buf.yaml, the
// contract, protovalidate's proto, the guard and buf (node_modules, linked), with the
// contract as its first commit on main.
type tempRepo struct {
	t   *testing.T
	dir string
	env []string
}

func newTempRepo(t *testing.T, root string) *tempRepo {
	t.Helper()
	r := &tempRepo{t: t, dir: t.TempDir()}
	// Keep the developer's git configuration (hooks, signing, default branch) and any
	// repository the test itself runs in out of the throwaway repository.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") {
			r.env = append(r.env, kv)
		}
	}
	r.env = append(r.env, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull)

	for _, d := range []string{"proto", ".buf-deps"} {
		if err := os.CopyFS(filepath.Join(r.dir, d), os.DirFS(filepath.Join(root, d))); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"buf.yaml", "tools/breaking.sh"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		r.write(f, string(b))
	}
	if err := os.Symlink(filepath.Join(root, "node_modules"), filepath.Join(r.dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	r.write(".gitignore", "/node_modules\n/.buf-deps/\n")
	r.git("init", "-q", "-b", "main")
	r.git("config", "user.name", "Breaking Guard Test")
	r.git("config", "user.email", "breaking-guard@trialhub.invalid")
	r.commit("The v1 contract")
	return r
}

// shallowClone clones the repository with only its newest commit, as a CI checkout
// with a depth limit does, and returns the clone (its origin is the repository).
func (r *tempRepo) shallowClone() *tempRepo {
	r.t.Helper()
	c := &tempRepo{t: r.t, dir: filepath.Join(r.t.TempDir(), "clone"), env: r.env}
	r.git("clone", "-q", "--depth", "1", "file://"+r.dir, c.dir)
	for _, d := range []string{".buf-deps", "node_modules"} {
		if err := os.Symlink(filepath.Join(r.dir, d), filepath.Join(c.dir, d)); err != nil {
			r.t.Fatal(err)
		}
	}
	return c
}

// git runs git in the repository and returns its trimmed output.
func (r *tempRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.CommandContext(r.t.Context(), "git", args...)
	cmd.Dir, cmd.Env = r.dir, r.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func (r *tempRepo) write(name, content string) {
	r.t.Helper()
	path := filepath.Join(r.dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *tempRepo) read(name string) string {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, name))
	if err != nil {
		r.t.Fatal(err)
	}
	return string(b)
}

// edit replaces old with new in file; old must occur exactly once, so a scenario
// that no longer fits the contract fails loudly instead of testing nothing.
func (r *tempRepo) edit(file, old, new string) {
	r.t.Helper()
	s := r.read(file)
	if n := strings.Count(s, old); n != 1 {
		r.t.Fatalf("%s: %q occurs %d times, want once; update the scenario to the contract", file, old, n)
	}
	r.write(file, strings.Replace(s, old, new, 1))
}

// cut deletes from the first occurrence of start through the first end after it.
func (r *tempRepo) cut(file, start, end string) {
	r.t.Helper()
	s := r.read(file)
	i := strings.Index(s, start)
	j := strings.Index(s[max(i, 0):], end)
	if i < 0 || j < 0 || strings.Count(s, start) != 1 {
		r.t.Fatalf("%s: no single %q ... %q; update the scenario to the contract", file, start, end)
	}
	r.write(file, s[:i]+s[i+j+len(end):])
}

// commit commits everything and returns the commit's full hash.
func (r *tempRepo) commit(msg string) string {
	r.t.Helper()
	r.git("add", "-A")
	r.git("commit", "-q", "--no-verify", "-m", msg)
	return r.git("rev-parse", "HEAD")
}

// label is how the guard names a commit: "commit <short hash> <subject>".
func (r *tempRepo) label(sha string) string {
	r.t.Helper()
	return "commit " + r.git("log", "-1", "--format=%h %s", sha)
}

// accept lists sha in proto/BREAKING_ACCEPTED, the documented way to accept a break.
func (r *tempRepo) accept(sha, reason string) {
	r.t.Helper()
	f, err := os.OpenFile(filepath.Join(r.dir, "proto/BREAKING_ACCEPTED"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := f.WriteString(sha + " " + reason + "\n"); err != nil {
		r.t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		r.t.Fatal(err)
	}
}

// wantPass runs the guard and fails the test unless it exits 0 and prints each of want.
func (r *tempRepo) wantPass(want ...string) string {
	r.t.Helper()
	return r.wantGuard(0, append([]string{"no breaking changes"}, want...))
}

// wantBreak runs the guard and fails the test unless it exits 1 and prints each of want.
func (r *tempRepo) wantBreak(want ...string) string {
	r.t.Helper()
	return r.wantGuard(1, append([]string{"breaking change"}, want...))
}

func (r *tempRepo) wantGuard(code int, want []string) string {
	r.t.Helper()
	out, got := runGuard(r.t, r.dir, r.env)
	r.t.Logf("bash tools/breaking.sh: exit %d\n%s", got, out)
	if got != code {
		r.t.Fatalf("bash tools/breaking.sh: exit %d, want %d:\n%s", got, code, out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			r.t.Errorf("bash tools/breaking.sh: output lacks %q:\n%s", w, out)
		}
	}
	return out
}

// runGuard runs tools/breaking.sh in dir and returns its output and exit code.
func runGuard(t *testing.T, dir string, env []string) (string, int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "bash", "tools/breaking.sh")
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("bash tools/breaking.sh: %v", err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}
