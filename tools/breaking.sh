#!/usr/bin/env bash
# Guards the contract against breaking changes with `buf breaking` (FILE rules, see
# buf.yaml).
#
# Why every commit and not only HEAD against main: several commits can land at once,
# and a later commit can hide an earlier break (remove a field, then add a new one with
# the same number and another type), so comparing only the ends can miss what a
# client built in between already depends on. So this walks every commit that touched
# the contract since it was first committed and checks it against its parent, then
# checks the working tree against HEAD, and on a branch the tree against the merge base
# with main.
#
# A break that was deliberately accepted (never needed once v1 is released: a break
# goes into a new v2 package beside v1, which is not a break) is listed with its
# commit hash and a reason in proto/BREAKING_ACCEPTED, one per line: "<sha> <reason>",
# with the full 40-character sha (git rev-parse <commit>).
#
# Usage: tools/breaking.sh            (from the repository root; make breaking)
set -euo pipefail

root=$(git rev-parse --show-toplevel)
cd "$root"
buf="$root/node_modules/.bin/buf"
deps="$root/.buf-deps/protovalidate"
test -x "$buf" || { echo "breaking: buf not installed; run make tools" >&2; exit 2; }
test -d "$deps" || { echo "breaking: $deps missing; run make proto-deps" >&2; exit 2; }

work=$(mktemp -d)
cache="$root/.tmp/breaking-images"
deps_hash=$(cat "$deps"/buf/validate/*.proto | sha256sum | cut -c1-16)
trap 'rm -rf "$work"' EXIT

accepted() {
  [ -f proto/BREAKING_ACCEPTED ] && grep -q "^$1[[:space:]]" proto/BREAKING_ACCEPTED
}

# image REV OUT builds the contract as it was at REV (or the working tree for "WORKTREE")
# into an image. Returns 1 when REV has no contract yet.
image() {
  local rev=$1 out=$2 dir key=""
  dir=$(mktemp -d "$work/tree.XXXXXX")
  if [ "$rev" = WORKTREE ]; then
    cp -r proto buf.yaml "$dir/"
  else
    git cat-file -e "$rev:proto" 2>/dev/null || return 1
    # Committed contracts are immutable: cache their images by content (the proto
    # tree, buf.yaml and the dependency), so each one is built once per checkout.
    key="$(git rev-parse "$rev:proto")-$(git rev-parse "$rev:buf.yaml" 2>/dev/null || echo none)-$deps_hash"
    if [ -f "$cache/$key.binpb" ]; then
      cp "$cache/$key.binpb" "$out"
      return 0
    fi
    git archive "$rev" proto buf.yaml | tar -x -C "$dir"
  fi
  mkdir -p "$dir/.buf-deps" && cp -r "$deps" "$dir/.buf-deps/"
  (cd "$dir" && "$buf" build -o "$out") || return 1
  if [ -n "$key" ]; then
    mkdir -p "$cache" && cp "$out" "$cache/$key.binpb.tmp" && mv "$cache/$key.binpb.tmp" "$cache/$key.binpb"
  fi
}

failures=0
# buf does not read buf.yaml's breaking section when both inputs are images, so the
# rules are given here; keep them the same as buf.yaml's (FILE, see why there).
rules='{"version":"v2","breaking":{"use":["FILE"]}}'
# check NEW OLD LABEL: buf breaking of NEW against OLD.
check() {
  local new=$1 old=$2 label=$3 out
  if ! out=$("$buf" breaking "$new" --against "$old" --config "$rules" 2>&1); then
    echo "breaking change in $label:"
    printf '%s\n' "$out" | sed 's/^/  /'
    failures=$((failures + 1))
  fi
}

# Every commit that touched the contract, oldest first, against the contract just
# before it. With --first-parent and the path filter, a listed commit's parent holds the
# contract of the previous listed commit, so that commit's image stands for the parent;
# the first listed commit wrote the contract and has nothing to be checked against.
# A commit whose contract does not build is a failure, not a commit to skip: skipping it
# (and its successor, whose parent would not build either) let a break made together
# with a typo, and the typo fixed in the next commit, pass unchecked. The commit after
# it is checked against the last contract that built.
# The walk needs the whole history: in a shallow clone the oldest commit present looks
# like the one that wrote the contract, and everything before it would pass unchecked.
# So a shallow clone fetches the rest from its remote, or fails loudly.
if [ "$(git rev-parse --is-shallow-repository)" = true ]; then
  if git remote get-url origin >/dev/null 2>&1 && git fetch -q --unshallow origin; then
    echo "breaking: the clone was shallow; fetched the whole history from origin"
  else
    echo "breaking: this clone is shallow and the rest of its history cannot be fetched," \
         "so the commits that touched the contract cannot all be checked; clone the whole" \
         "history (git fetch --unshallow) and run again" >&2
    exit 2
  fi
fi
commits=""
if git rev-parse -q --verify HEAD >/dev/null; then
  commits=$(git rev-list --reverse --first-parent HEAD -- proto buf.yaml) ||
    { echo "breaking: git rev-list failed; cannot list the commits to check" >&2; exit 2; }
fi
checked=0
prev=""
for c in $commits; do
  label="commit $(git log -1 --format='%h %s' "$c")"
  if ! errs=$(image "$c" "$work/new.binpb" 2>&1); then
    if accepted "$c"; then
      echo "accepted unbuildable contract in $label (proto/BREAKING_ACCEPTED)"
    else
      echo "breaking change in $label: its contract is missing or does not build, so it cannot be checked:"
      printf '%s\n' "$errs" | sed 's/^/  /'
      failures=$((failures + 1))
    fi
    continue
  fi
  if [ -n "$prev" ]; then
    checked=$((checked + 1))
    if accepted "$c"; then
      echo "accepted break in ${label#commit } (proto/BREAKING_ACCEPTED)"
    else
      check "$work/new.binpb" "$prev" "$label"
    fi
  fi
  prev="$work/prev.binpb"
  mv "$work/new.binpb" "$prev"
done

if git rev-parse -q --verify HEAD >/dev/null && image HEAD "$work/head.binpb"; then
  image WORKTREE "$work/tree.binpb"
  check "$work/tree.binpb" "$work/head.binpb" "uncommitted changes against HEAD"
  branch=$(git rev-parse --abbrev-ref HEAD)
  if [ "$branch" != main ] && ! git rev-parse -q --verify origin/main >/dev/null &&
     ! git rev-parse -q --verify main >/dev/null; then
    # Without main the branch cannot be compared with where it started; passing
    # anyway would hide a break the branch makes.
    echo "breaking: ${branch/#HEAD/a detached HEAD} is not main and neither main nor origin/main" \
         "is present, so it cannot be checked against its merge base; fetch main and run again" >&2
    exit 2
  fi
  for main in origin/main main; do
    if [ "$branch" != main ] && git rev-parse -q --verify "$main" >/dev/null; then
      base=$(git merge-base HEAD "$main") against="its merge base with $main"
      # A break accepted on this branch is its new baseline (the commits before it
      # were checked one by one above); without this the accepted break would still
      # fail here, and the document-and-accept path would never pass on a branch.
      for c in $(git rev-list --first-parent "$base..HEAD" -- proto buf.yaml); do
        if accepted "$c"; then
          base=$c against="the break accepted in $(git log -1 --format=%h "$c")"
          break
        fi
      done
      if image "$base" "$work/base.binpb"; then
        check "$work/tree.binpb" "$work/base.binpb" "branch $branch against $against"
      fi
      break
    fi
  done
fi

if [ "$failures" -gt 0 ]; then
  echo "buf breaking: $failures breaking change(s). A break goes into a new package version" \
       "(trialhub.<domain>.v2) beside v1; see README.md." >&2
  exit 1
fi
echo "buf breaking: no breaking changes ($checked commit(s) checked against their parents, plus the working tree)"
