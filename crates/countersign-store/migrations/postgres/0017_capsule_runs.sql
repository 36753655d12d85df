-- Capsule-delegable work (issue 17, point 9): a planned suite that a `[[capsules.signers]]`
-- entry of the base delegates (that suite, in that environment) is queued like any other,
-- and names here the signers (their raw ed25519 public keys, 64 lower-case hex digits)
-- whose capsules may lease it. A runner leasing under a capsule sees a row only when the
-- capsule verified against one of these keys and covers the row's suite and environment;
-- a runner without a capsule sees it only through `run_runners`.
CREATE TABLE run_capsule_signers (
    run TEXT NOT NULL REFERENCES runs (id),
    signer TEXT NOT NULL,
    PRIMARY KEY (run, signer)
);
CREATE INDEX run_capsule_signers_by_signer ON run_capsule_signers (signer, run);
