//! The one error type of this crate.
//!
//! Every variant names *where* the problem is (`at`, e.g. "COSE_Sign1
//! protected header" or "countersignature 2 protected header") and *what* is
//! wrong, so a rejected message can be logged meaningfully without a hex dump.

/// Why bytes are not a valid edgeward format, or why one could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The bytes are not one well-formed CBOR item (truncated, reserved
    /// encodings, nested too deep, trailing bytes...).
    #[error("{at}: not well-formed CBOR: {reason}")]
    Malformed {
        /// Which structure.
        at: String,
        /// What is wrong with the encoding.
        reason: String,
    },
    /// An item has the wrong CBOR type.
    #[error("{at}: expected {expected}, found {found}")]
    WrongType {
        /// Which item.
        at: String,
        /// The type the format requires.
        expected: &'static str,
        /// The type that was there.
        found: &'static str,
    },
    /// A COSE_Sign1 carries a CBOR tag other than 18.
    #[error("{at}: CBOR tag {tag} is not COSE_Sign1 (18)")]
    WrongTag {
        /// Which item.
        at: String,
        /// The tag found.
        tag: u64,
    },
    /// An array has the wrong number of elements.
    #[error("{at}: expected {expected} elements, found {found}")]
    WrongLength {
        /// Which array.
        at: String,
        /// How many the format requires.
        expected: usize,
        /// How many there were.
        found: usize,
    },
    /// The signature algorithm is not Ed25519 (EdDSA -8 or Ed25519 -19).
    #[error("{at}: alg {alg} is not EdDSA")]
    UnsupportedAlg {
        /// Which header.
        at: String,
        /// The algorithm found, as CBOR diagnostic text (`-7`, `"ES256"`).
        alg: String,
    },
    /// A required header parameter is absent.
    #[error("{at}: no {name} (label {label})")]
    MissingHeader {
        /// Which header.
        at: String,
        /// The parameter's name.
        name: &'static str,
        /// The parameter's label.
        label: i64,
    },
    /// A label occurs twice in a header map, or in both the protected and
    /// the unprotected header (RFC 9052 §3 requires them to be disjoint).
    #[error("{at}: label {label} appears more than once")]
    DuplicateLabel {
        /// Which header.
        at: String,
        /// The repeated label.
        label: String,
    },
    /// A parameter that must be covered by the signature is in an unprotected header.
    #[error("{at}: {name} (label {label}) must be in the protected header")]
    NotProtected {
        /// Which header.
        at: String,
        /// The parameter's name.
        name: &'static str,
        /// The parameter's label.
        label: i64,
    },
    /// `crit` (label 2) lists a parameter this crate does not understand.
    #[error("{at}: critical header parameter {label} is not understood")]
    UnknownCritical {
        /// Which header.
        at: String,
        /// The label listed in `crit`.
        label: String,
    },
    /// A signature is not 64 bytes, the size of every Ed25519 signature.
    #[error("{at}: signature is {len} bytes, not 64")]
    SignatureLength {
        /// Which signature.
        at: String,
        /// Its length.
        len: usize,
    },
    /// A rule module's hash is not 32 bytes (SHA-256).
    #[error("{at}: hash of module {module:?} is {len} bytes, not 32")]
    ModuleHashLength {
        /// Which modules list.
        at: String,
        /// The module's name.
        module: String,
        /// The hash's length.
        len: usize,
    },
    /// A value has the right type but is not acceptable (an empty kid, a
    /// detached payload, text that is not UTF-8...).
    #[error("{at}: {problem}")]
    Invalid {
        /// Which item.
        at: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A SenML pack is not CBOR.
    #[error("SenML pack: not CBOR: {0}")]
    SenmlCbor(String),
    /// A SenML pack is CBOR but not the SenML this gateway reads.
    #[error("SenML pack: {0}")]
    SenmlShape(&'static str),
}

/// Why a COSE structure could not be built: the inputs, or the caller's signer.
#[derive(Debug, thiserror::Error)]
pub enum BuildError<E> {
    /// An input (or the signer's output) does not fit the format.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The signing closure failed.
    #[error("signer failed: {0}")]
    Sign(E),
}
