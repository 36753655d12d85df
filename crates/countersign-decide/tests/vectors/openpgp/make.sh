#!/usr/bin/env bash
# Makes the OpenPGP fixtures of countersign-decide's signature tests with the real `gpg` and
# `git` (see README.md beside this file). Run from this directory; it rewrites every fixture.
# Keys are random, so each run makes different (equally valid) files.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'gpgconf --homedir "$work/gnupg" --kill all 2>/dev/null || true; rm -rf "$work"' EXIT
export GNUPGHOME="$work/gnupg"
mkdir -m 700 "$GNUPGHOME"
gpg=(gpg --batch --quiet --pinentry-mode loopback --passphrase '')
# Every key and signature is made at a fixed, faked time, after the key it uses.
T0=20250101T000000

fpr() { gpg --with-colons --list-keys "$1" | awk -F: '$1 == "fpr" { print $10; exit }'; }
sub_fpr() { gpg --with-colons --list-keys "$1" | awk -F: '$1 == "fpr" { n++ } $1 == "fpr" && n == 2 { print $10; exit }'; }

# alice: an ed25519 primary key that only certifies, and an ed25519 signing subkey: git signs
# with the subkey, as gpg picks it.
"${gpg[@]}" --faked-system-time "$T0" --quick-gen-key 'Alice <alice@example.com>' ed25519 cert never
alice=$(fpr alice@example.com)
"${gpg[@]}" --faked-system-time "$T0" --quick-add-key "$alice" ed25519 sign never
# rob: an RSA primary key that signs itself (no subkey).
"${gpg[@]}" --faked-system-time "$T0" --quick-gen-key 'Rob <rob@example.com>' rsa2048 sign never
rob=$(fpr rob@example.com)
# mallory: another ed25519 key, on nobody's User.
"${gpg[@]}" --faked-system-time "$T0" --quick-gen-key 'Mallory <mallory@example.com>' ed25519 sign never
mallory=$(fpr mallory@example.com)
# erin: a key that was valid when it signed, and one whose signature came after it expired:
# made without expiry, her commit signed a year later, then (with a self-signature dated
# before that commit) set to expire a day after it was made.
"${gpg[@]}" --faked-system-time "$T0" --quick-gen-key 'Erin <erin@example.com>' ed25519 sign never
erin=$(fpr erin@example.com)
# ruth: a revoked key (the revocation certificate gpg made with it, imported after she signed).
"${gpg[@]}" --faked-system-time "$T0" --quick-gen-key 'Ruth <ruth@example.com>' ed25519 sign never
ruth=$(fpr ruth@example.com)

repo="$work/repo"
git init -q "$repo"
echo 'pub fn charge() {}' > "$repo/lib.rs"
git -C "$repo" add lib.rs
tree=$(git -C "$repo" write-tree)
commit() { # NAME KEY EMAIL
  local name=$1 key=$2 email=$3
  local id
  id=$(cd "$repo" && GIT_AUTHOR_NAME=$name GIT_AUTHOR_EMAIL=$email GIT_AUTHOR_DATE=2025-06-01T10:00:00Z \
    GIT_COMMITTER_NAME=$name GIT_COMMITTER_EMAIL=$email GIT_COMMITTER_DATE=2025-06-01T10:00:00Z \
    git -c gpg.program="$work/gpg-at" -c user.signingkey="$key" commit-tree "$tree" -m "signed by $name" -S)
  echo "$id"
}
# gpg as git runs it, at a faked time.
cat > "$work/gpg-at" <<SH
#!/bin/sh
exec gpg --faked-system-time "\$SIGN_AT" "\$@"
SH
chmod +x "$work/gpg-at"

export SIGN_AT=20250601T100000
alice_c=$(commit alice "$alice" alice@example.com)
rob_c=$(commit rob "$rob" rob@example.com)
mallory_c=$(commit mallory "$mallory" alice@example.com)
erin_c=$(commit erin "$erin" erin@example.com)
ruth_c=$(commit ruth "$ruth" ruth@example.com)
# The expiry is set with a self-signature of 2025-01-01 01:00, before erin's commit: she
# signed in June a key that expired on 2 January.
"${gpg[@]}" --faked-system-time 20250101T010000 --quick-set-expire "$erin" 1d
gpg --batch --yes --import <(sed 's/^:-----BEGIN/-----BEGIN/' "$GNUPGHOME/openpgp-revocs.d/$ruth.rev") 2>/dev/null

for who in alice rob mallory erin ruth; do
  gpg --armor --export "$who@example.com" > "$here/$who.asc"
done
: > "$here/commits"
for name in alice rob mallory erin ruth; do
  var=${name}_c
  id=${!var}
  git -C "$repo" cat-file commit "$id" > "$here/$name.commit"
  echo "$name $id" >> "$here/commits"
done
# alice's commit with its message changed: the same signature over other bytes.
sed 's/^signed by alice$/signed by alice, then altered/' "$here/alice.commit" > "$here/altered.commit"
echo "altered $(git -C "$repo" hash-object -t commit --stdin < "$here/altered.commit")" >> "$here/commits"
echo "alice: $alice (signing subkey $(sub_fpr alice@example.com))" > "$here/fingerprints"
for who in rob mallory erin ruth; do echo "$who: $(fpr "$who@example.com")" >> "$here/fingerprints"; done
