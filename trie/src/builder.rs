//! [`RootBuilder`]: computes a trie root from its contents fed in key order.
//!
//! The builder is fed *items* in strictly increasing path order:
//!
//! - leaves (any key length, so a key may be a prefix of another and its
//!   value then sits in a branch node),
//! - already-hashed branch nodes ("the branch node at path `P` has reference
//!   `R`"): the builder adds the extension above it if the trie needs one,
//! - already-hashed *slots* ("the child of the branch at `P[..len-1]` at
//!   nibble `P[len-1]` has reference `R`"): the node behind the slot is
//!   opaque (a leaf or an extension), so the caller must guarantee that a
//!   branch node exists at `P[..len-1]`; the builder reports an error if not.
//!
//! It keeps one open frame per branch node on the path of the most recent
//! item. When the next item arrives, the length of the common prefix with
//! the previous one tells which branches are complete: those deeper than
//! the common prefix are encoded and hung into their parent. Memory is
//! proportional to the key length, not to the number of items.
//!
//! On request it also returns the [`BranchRecord`]s of the branch nodes it
//! created (per the storage policy in [`crate::record`]) and the RLP of
//! every node on the path of a set of target keys (proof nodes).

use crate::nibbles::Nibbles;
use crate::node::{
    encode_branch, encode_extension, encode_leaf, encode_leaf_suffix_into, NodeRef, MAX_INLINE_NODE_LEN,
};
use crate::record::{stores_record, BranchRecord, ChildKind};
use crate::EMPTY_ROOT_HASH;
use alloy_primitives::{keccak256, Bytes, B256};
use core::fmt;

/// Errors from feeding a [`RootBuilder`] items that cannot form a trie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// An item's path was not greater than the previous item's path.
    OutOfOrder {
        /// Path of the previous item.
        previous: Nibbles,
        /// Path of the offending item.
        next: Nibbles,
    },
    /// An item lies inside a hashed subtree given earlier.
    InsideHashedSubtree {
        /// Path of the hashed subtree.
        subtree: Nibbles,
        /// Path of the offending item.
        next: Nibbles,
    },
    /// A leaf with an empty value (empty values mean "absent").
    EmptyValue(Nibbles),
    /// A slot item that does not end up directly below a branch node.
    SlotNotUnderBranch(Nibbles),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfOrder { previous, next } => {
                write!(f, "trie items out of order: {next:?} after {previous:?}")
            }
            Self::InsideHashedSubtree { subtree, next } => {
                write!(f, "item {next:?} lies inside the hashed subtree at {subtree:?}")
            }
            Self::EmptyValue(k) => write!(f, "leaf {k:?} has an empty value"),
            Self::SlotNotUnderBranch(p) => {
                write!(f, "hashed slot {p:?} is not a direct child of a branch node")
            }
        }
    }
}

impl std::error::Error for BuildError {}

/// One input of the builder.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Leaf {
        key: Nibbles,
        value: Vec<u8>,
        hashed: Option<LeafHash>,
    },
    Branch {
        path: Nibbles,
        node_ref: NodeRef,
        stored: bool,
    },
    Slot {
        path: Nibbles,
        node_ref: NodeRef,
        kind: ChildKind,
    },
    /// A branch node the builder completed, not hashed yet (never fed by a
    /// caller).
    Completed {
        path: Nibbles,
        rlp: Vec<u8>,
        stored: bool,
    },
    /// A completed branch node whose few hashed children are not hashed
    /// yet either: `RootBuilder::pending_branches[index]` (never fed by a caller).
    Pending {
        path: Nibbles,
        index: usize,
    },
}

impl Item {
    fn path(&self) -> &Nibbles {
        match self {
            Self::Leaf { key, .. } => key,
            Self::Branch { path, .. }
            | Self::Slot { path, .. }
            | Self::Completed { path, .. }
            | Self::Pending { path, .. } => path,
        }
    }

    /// A completed branch as a hashed one (other items as they are).
    fn hashed(self) -> Self {
        match self {
            Self::Completed { path, rlp, stored } => Self::Branch { path, node_ref: NodeRef::from_rlp(&rlp), stored },
            other => other,
        }
    }
}

/// The hash of a leaf's node as the leaf hangs from a branch at `depth`
/// (its node holds the key from nibble `depth + 1` on), computed ahead of
/// [`RootBuilder::add_leaf_hashed`] by a caller that knows the leaf's
/// neighbours in key order (see [`leaf_depth`]), so that the hashing can
/// run elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafHash {
    /// Depth of the branch the leaf hangs from.
    pub depth: usize,
    /// keccak256 of the leaf's node at that depth.
    pub hash: B256,
}

/// Nibbles two 32-byte keys share at their start.
pub(crate) fn common_nibbles(a: &B256, b: &B256) -> usize {
    for (i, (x, y)) in a.0.chunks_exact(8).zip(b.0.chunks_exact(8)).enumerate() {
        let diff =
            u64::from_be_bytes(x.try_into().expect("8 bytes")) ^ u64::from_be_bytes(y.try_into().expect("8 bytes"));
        if diff != 0 {
            return i * 16 + diff.leading_zeros() as usize / 4;
        }
    }
    64
}

/// Depth of the branch that the leaf of `key` hangs from in a trie of
/// 32-byte keys whose neighbours of `key` in key order are `prev` and
/// `next`: where it parts from the closer one. `None` without neighbours
/// (the leaf is the whole trie) or when a neighbour is not a distinct key.
pub fn leaf_depth(prev: Option<&B256>, key: &B256, next: Option<&B256>) -> Option<usize> {
    let depth = [prev, next].into_iter().flatten().map(|n| common_nibbles(n, key)).max()?;
    (depth < 64).then_some(depth)
}

/// Writes the node of the leaf `key` = `value` hanging from a branch at
/// `depth` into `out`, replacing its contents; true if the node is hashed
/// by its parent (longer than a hash), false if it is inlined (then it has
/// no [`LeafHash`]).
pub fn leaf_node_into(out: &mut Vec<u8>, key: &B256, depth: usize, value: &[u8]) -> bool {
    encode_leaf_suffix_into(out, &Nibbles::unpack(key.as_slice()), depth + 1, value);
    out.len() > MAX_INLINE_NODE_LEN
}

/// The topmost node of what a builder was fed, before it is hashed into a
/// root: enough to hang it under a parent built elsewhere (see
/// [`crate::incremental::combine_subtries`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubtrieTop {
    /// Nothing was fed.
    Empty,
    /// Exactly one leaf was fed.
    Leaf {
        /// The full key.
        key: Nibbles,
        /// The value.
        value: Vec<u8>,
    },
    /// The topmost node is a branch node at `path`.
    Branch {
        /// Full path of the branch node.
        path: Nibbles,
        /// The branch node's reference.
        node_ref: NodeRef,
        /// Whether the branch node has a stored record.
        stored: bool,
    },
}

impl SubtrieTop {
    /// The root hash of a trie consisting of just this node (adding the
    /// leading extension or the full leaf path as needed).
    pub fn root_hash(&self) -> B256 {
        match self {
            Self::Empty => EMPTY_ROOT_HASH,
            Self::Branch { path, node_ref, .. } if path.is_empty() => node_ref.node_hash(),
            _ => self.root_wrapper_rlp().map_or(EMPTY_ROOT_HASH, keccak256),
        }
    }

    /// The RLP of the root node when it is not a branch at the root path:
    /// the leaf with its full key, or the extension leading to the top
    /// branch.
    fn root_wrapper_rlp(&self) -> Option<Vec<u8>> {
        match self {
            Self::Leaf { key, value } => Some(encode_leaf(key, value)),
            Self::Branch { path, node_ref, .. } if !path.is_empty() => Some(encode_extension(path, node_ref)),
            _ => None,
        }
    }
}

/// The root of a trie before its last keccak (see
/// [`RootBuilder::finish_unhashed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnhashedRoot {
    /// Nothing was fed: the empty root.
    Empty,
    /// The root is this hash already (a hashed branch fed at the root path).
    Hash(B256),
    /// The root is the keccak of this node's RLP.
    Node(Vec<u8>),
}

impl UnhashedRoot {
    /// The root hash (hashing the node, if there is one).
    pub fn hash(&self) -> B256 {
        match self {
            Self::Empty => EMPTY_ROOT_HASH,
            Self::Hash(h) => *h,
            Self::Node(rlp) => keccak256(rlp),
        }
    }
}

/// What [`RootBuilder::finish`] returns.
#[derive(Debug, Clone)]
pub struct BuildOutput {
    /// The topmost node, for combining with sibling subtries.
    pub top: SubtrieTop,
    /// Records of the stored branch nodes created, sorted by path (empty
    /// unless [`RootBuilder::with_records`] was set).
    pub records: Vec<(Nibbles, BranchRecord)>,
    /// `(position, rlp)` of every node lying on the path of a proof target,
    /// sorted by position, where position is the path of the slot the node
    /// occupies (`[]` for the root node). Only nodes that a parent refers to
    /// by hash, and the root node, are included: embedded nodes are part of
    /// their parent's RLP.
    pub proof_nodes: Vec<(Nibbles, Bytes)>,
    /// Number of branch nodes the builder created (stored or not).
    pub branch_nodes: usize,
}

impl BuildOutput {
    /// The trie root hash. Hashed on request (the top node's wrapper, when
    /// it is a leaf or sits below an extension): a builder of one part of a
    /// trie only needs [`BuildOutput::top`], and hashing a root nobody reads
    /// cost an import one keccak per storage-trie part.
    pub fn root(&self) -> B256 {
        self.top.root_hash()
    }

    /// The proof of `key`: the RLP of the nodes on its path, root first.
    /// Requires `key` to have been a proof target.
    pub fn proof(&self, key: &Nibbles) -> Vec<Bytes> {
        let mut nodes: Vec<&(Nibbles, Bytes)> = self.proof_nodes.iter().filter(|(p, _)| key.starts_with(p)).collect();
        nodes.sort_by_key(|(p, _)| p.len());
        nodes.into_iter().map(|(_, rlp)| rlp.clone()).collect()
    }
}

/// A branch node under construction.
#[derive(Debug, Clone)]
struct Frame {
    /// Path length of the branch node; its path is a prefix of the current
    /// item's path.
    depth: usize,
    children: [Option<NodeRef>; 16],
    state_mask: u16,
    branch_mask: u16,
    stored_mask: u16,
    value: Option<Vec<u8>>,
}

impl Frame {
    fn new(depth: usize) -> Self {
        Self { depth, children: [None; 16], state_mask: 0, branch_mask: 0, stored_mask: 0, value: None }
    }

    fn set_child(&mut self, nibble: u8, node_ref: NodeRef, kind: ChildKind) {
        let bit = 1u16 << nibble;
        // Items arrive strictly ordered and never inside each other, so no
        // slot is filled twice.
        debug_assert!(self.state_mask & bit == 0, "slot {nibble} filled twice");
        self.children[usize::from(nibble)] = Some(node_ref);
        self.state_mask |= bit;
        if let ChildKind::Branch { stored } = kind {
            self.branch_mask |= bit;
            if stored {
                self.stored_mask |= bit;
            }
        }
    }

    fn entry_count(&self) -> u32 {
        self.state_mask.count_ones() + u32::from(self.value.is_some())
    }
}

/// Computes a trie root (and optionally branch records and proof nodes) from
/// items fed in strictly increasing path order. See the module docs.
///
/// An item rejected for its order or position ([`BuildError::OutOfOrder`],
/// [`BuildError::InsideHashedSubtree`], [`BuildError::EmptyValue`]) leaves
/// the builder unchanged. [`BuildError::SlotNotUnderBranch`] is detected
/// while placing an earlier item; the builder must be discarded after it.
#[derive(Debug, Default)]
pub struct RootBuilder {
    stack: Vec<Frame>,
    pending: Option<Item>,
    top: Option<Item>,
    retain_records: bool,
    records: Vec<(Nibbles, BranchRecord)>,
    proof_targets: Vec<Nibbles>,
    proof_nodes: Vec<(Nibbles, Bytes)>,
    branch_nodes: usize,
    /// The RLP of the leaf being hung, reused between leaves.
    leaf_rlp: Vec<u8>,
    /// A leaf value buffer to reuse for the next leaf.
    spare_value: Vec<u8>,
    /// Children hung by hash (leaves and completed branches) whose hashes
    /// wait for their parent branch to complete, so that a branch's
    /// children are hashed in one batch (`metis_keccak`: eight at a time
    /// where the CPU can), innermost frame last.
    deferred: Vec<Deferred>,
    deferred_rlp: Vec<u8>,
    /// Hashes of the deferred children, reused between branches.
    deferred_hashes: Vec<B256>,
    /// Completed branches with too few deferred children for a batch of
    /// their own (a bottom branch of two leaves): their children are hashed
    /// with those of their pending siblings when the parent completes, in
    /// the order their parents' `deferred` entries name them.
    pending_branches: Vec<PendingBranch>,
}

/// A child of an open frame whose hash waits for the frame to complete.
#[derive(Debug, Clone, Copy)]
struct Deferred {
    /// Depth of the frame.
    depth: usize,
    nibble: u8,
    /// End of the child's RLP in `RootBuilder::deferred_rlp` (a pending
    /// branch has none there yet: the end of the previous entry's).
    end: usize,
    child: DeferredChild,
}

#[derive(Debug, Clone, Copy)]
enum DeferredChild {
    /// Its RLP is in `RootBuilder::deferred_rlp`.
    Encoded(ChildKind),
    /// `RootBuilder::pending_branches[index]`, encoded when the frame completes.
    Pending(usize),
}

impl Deferred {
    fn pending(&self) -> Option<usize> {
        match self.child {
            DeferredChild::Pending(index) => Some(index),
            DeferredChild::Encoded(_) => None,
        }
    }
}

/// A completed branch whose deferred children are not hashed yet.
#[derive(Debug)]
struct PendingBranch {
    path: Nibbles,
    frame: Frame,
    /// The deferred children: `(nibble, kind, rlp)`.
    children: Vec<(u8, ChildKind, Vec<u8>)>,
    /// Once its children are hashed: the branch's RLP and whether it has a
    /// stored record (which its parent's record says).
    rlp: Vec<u8>,
    stored: bool,
}

impl RootBuilder {
    /// A builder that computes only the root.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also return the records of the stored branch nodes created.
    pub fn with_records(mut self, retain: bool) -> Self {
        self.retain_records = retain;
        self
    }

    /// Also return the nodes on the paths of these keys (proof nodes).
    pub fn with_proof_targets(mut self, targets: impl IntoIterator<Item = Nibbles>) -> Self {
        self.proof_targets = targets.into_iter().collect();
        self.proof_targets.sort();
        self.proof_targets.dedup();
        self
    }

    /// Adds a leaf. Keys must strictly increase (a key may be a prefix of
    /// the next one). Values must be non-empty.
    pub fn add_leaf(&mut self, key: Nibbles, value: &[u8]) -> Result<(), BuildError> {
        self.add_leaf_hashed(key, value, None)
    }

    /// [`RootBuilder::add_leaf`] with the hash of the leaf's node computed
    /// by the caller for the depth it expects the leaf to hang at (see
    /// [`LeafHash`]): a leaf that hangs there takes the hash as it is, one
    /// that hangs elsewhere is encoded and hashed as without it.
    pub fn add_leaf_hashed(&mut self, key: Nibbles, value: &[u8], hashed: Option<LeafHash>) -> Result<(), BuildError> {
        if value.is_empty() {
            return Err(BuildError::EmptyValue(key));
        }
        let mut owned = std::mem::take(&mut self.spare_value);
        owned.clear();
        owned.extend_from_slice(value);
        self.add(Item::Leaf { key, value: owned, hashed })
    }

    /// Adds an already-hashed branch node at exactly `path` (everything
    /// below `path` is covered by it). `stored` says whether it has a stored
    /// record, which goes into its parent's record.
    pub fn add_branch(&mut self, path: Nibbles, node_ref: NodeRef, stored: bool) -> Result<(), BuildError> {
        self.add(Item::Branch { path, node_ref, stored })
    }

    /// Adds an already-hashed node occupying the slot `path` (a branch's
    /// child slot: the node covers everything below `path`). The caller
    /// guarantees a branch node ends up at `path[..len-1]`, otherwise
    /// feeding or finishing fails with [`BuildError::SlotNotUnderBranch`].
    pub fn add_slot(&mut self, path: Nibbles, node_ref: NodeRef, kind: ChildKind) -> Result<(), BuildError> {
        if path.is_empty() {
            return Err(BuildError::SlotNotUnderBranch(path));
        }
        self.add(Item::Slot { path, node_ref, kind })
    }

    /// Adds the node of an unstored branch at exactly `path` that the
    /// caller built from everything below `path` ([`crate::bottom`]), not
    /// hashed yet: it is hashed with its siblings when its parent
    /// completes. `branch_nodes`: the branch nodes it holds, counted in
    /// [`BuildOutput::branch_nodes`]. Proof nodes are not collected from
    /// it (see [`RootBuilder::wants_proofs`]).
    pub(crate) fn add_branch_node(
        &mut self,
        path: Nibbles,
        rlp: Vec<u8>,
        branch_nodes: usize,
    ) -> Result<(), BuildError> {
        self.add(Item::Completed { path, rlp, stored: false })?;
        self.branch_nodes += branch_nodes;
        Ok(())
    }

    /// Whether the builder collects proof nodes (then every node must be
    /// built here).
    pub(crate) fn wants_proofs(&self) -> bool {
        !self.proof_targets.is_empty()
    }

    fn add(&mut self, item: Item) -> Result<(), BuildError> {
        // Validate before touching any state, so a rejected item leaves the
        // builder as it was.
        let common = match &self.pending {
            None => None,
            Some(prev) => {
                let (p, n) = (prev.path(), item.path());
                if p >= n {
                    return Err(BuildError::OutOfOrder { previous: p.clone(), next: n.clone() });
                }
                if !matches!(prev, Item::Leaf { .. }) && n.starts_with(p) {
                    return Err(BuildError::InsideHashedSubtree { subtree: p.clone(), next: n.clone() });
                }
                Some(p.common_prefix_len(n))
            }
        };
        if let (Some(prev), Some(common)) = (self.pending.take(), common) {
            self.place(prev, Some(common))?;
        }
        self.pending = Some(item);
        Ok(())
    }

    /// Whether a node at `position` lies on the path of a proof target.
    fn is_proof_position(&self, position: &Nibbles) -> bool {
        if self.proof_targets.is_empty() {
            return false;
        }
        let i = self.proof_targets.partition_point(|t| t < position);
        self.proof_targets.get(i).is_some_and(|t| t.starts_with(position))
    }

    fn retain_proof(&mut self, position: &Nibbles, rlp: &[u8]) {
        if (rlp.len() > crate::node::MAX_INLINE_NODE_LEN || position.is_empty()) && self.is_proof_position(position) {
            self.proof_nodes.push((position.clone(), Bytes::copy_from_slice(rlp)));
        }
    }

    /// Hangs `item` (whose successor shares `next_common` nibbles with it, or
    /// `None` at the end) into the right branch, completing every branch
    /// deeper than `next_common` on the way.
    fn place(&mut self, item: Item, next_common: Option<usize>) -> Result<(), BuildError> {
        let mut cur = item;
        loop {
            let top_depth = self.stack.last().map(|f| f.depth);
            let opens_new_branch = match (top_depth, next_common) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(t), Some(c)) => c > t,
            };
            if opens_new_branch {
                // `cur` and its successor diverge below every open branch: a
                // new branch starts where they diverge.
                self.stack.push(Frame::new(next_common.unwrap_or_default()));
                return self.hang(cur);
            }
            match top_depth {
                Some(t) => {
                    let path = cur.path().clone();
                    self.hang(cur)?;
                    if next_common == Some(t) {
                        // The successor continues in this branch.
                        return Ok(());
                    }
                    cur = self.pop_frame(&path);
                }
                None => {
                    // End of input and no open branch: `cur` is the top node.
                    if let Item::Slot { path, .. } = cur {
                        return Err(BuildError::SlotNotUnderBranch(path));
                    }
                    self.top = Some(cur);
                    return Ok(());
                }
            }
        }
    }

    /// Encodes `item` as a child of the innermost open branch.
    fn hang(&mut self, item: Item) -> Result<(), BuildError> {
        // `place` pushes or finds a frame before every call.
        let depth = match self.stack.last() {
            Some(f) => f.depth,
            None => return Err(BuildError::SlotNotUnderBranch(item.path().clone())),
        };
        let (nibble, node_ref, kind) = match item {
            Item::Leaf { key, value, hashed: Some(h) }
                if h.depth == depth && key.len() > depth && self.proof_targets.is_empty() =>
            {
                // Its node (longer than a hash, or the caller would not have
                // hashed it) was hashed by the caller for this depth.
                let nibble = key.nibble(depth);
                self.spare_value = value;
                (nibble, NodeRef::from_hash(h.hash), ChildKind::Leaf)
            }
            Item::Leaf { key, value, .. } => {
                if key.len() == depth {
                    // Invariant from `place`: only the top frame's own key can land here.
                    if let Some(frame) = self.stack.last_mut() {
                        debug_assert!(frame.value.is_none());
                        frame.value = Some(value);
                    }
                    return Ok(());
                }
                let mut rlp = std::mem::take(&mut self.leaf_rlp);
                encode_leaf_suffix_into(&mut rlp, &key, depth + 1, &value);
                if !self.proof_targets.is_empty() {
                    self.retain_proof(&key.prefix(depth + 1), &rlp);
                }
                let nibble = key.nibble(depth);
                self.spare_value = value;
                if rlp.len() > MAX_INLINE_NODE_LEN {
                    // Hashed with the branch's other children when it completes.
                    self.defer(depth, nibble, ChildKind::Leaf, &rlp);
                    self.leaf_rlp = rlp;
                    return Ok(());
                }
                let node_ref = NodeRef::from_rlp(&rlp);
                self.leaf_rlp = rlp;
                (nibble, node_ref, ChildKind::Leaf)
            }
            Item::Completed { path, rlp, stored } if path.len() == depth + 1 && rlp.len() > MAX_INLINE_NODE_LEN => {
                // A direct child: hashed with its siblings when the parent completes.
                self.defer(depth, path.nibble(depth), ChildKind::Branch { stored }, &rlp);
                return Ok(());
            }
            item @ Item::Completed { .. } => return self.hang(item.hashed()),
            Item::Pending { path, index } if path.len() == depth + 1 => {
                // Its children are hashed with its siblings' when the parent completes.
                let end = self.deferred_rlp.len();
                let child = DeferredChild::Pending(index);
                self.deferred.push(Deferred { depth, nibble: path.nibble(depth), end, child });
                return Ok(());
            }
            Item::Pending { index, .. } => {
                // Below an extension: the extension needs the branch's hash now.
                let item = self.complete_pending(index);
                return self.hang(item);
            }
            Item::Branch { path, node_ref, stored } => {
                // The order checks in `add` reject items inside or above a
                // hashed branch; this guards the invariant without panicking.
                if path.len() <= depth {
                    return Err(BuildError::InsideHashedSubtree { subtree: path.clone(), next: path });
                }
                let child = if path.len() == depth + 1 {
                    node_ref
                } else {
                    let rlp = encode_extension(&path.slice(depth + 1, path.len()), &node_ref);
                    self.retain_proof(&path.prefix(depth + 1), &rlp);
                    NodeRef::from_rlp(&rlp)
                };
                (path.nibble(depth), child, ChildKind::Branch { stored })
            }
            Item::Slot { path, node_ref, kind } => {
                if path.len() != depth + 1 {
                    return Err(BuildError::SlotNotUnderBranch(path));
                }
                (path.nibble(depth), node_ref, kind)
            }
        };
        if let Some(frame) = self.stack.last_mut() {
            frame.set_child(nibble, node_ref, kind);
        }
        Ok(())
    }

    /// Completes the innermost open branch, whose path is a prefix of
    /// `item_path`, and returns it as an item to hang into its parent.
    fn pop_frame(&mut self, item_path: &Nibbles) -> Item {
        let Some(mut frame) = self.stack.pop() else {
            // `place` only pops after hanging into an existing frame.
            unreachable!("pop_frame on an empty stack");
        };
        let path = item_path.prefix(frame.depth);
        let first = self.deferred_of(frame.depth);
        let own = &self.deferred[first..];
        // A frame is created where two items diverge, so it gets at least two
        // entries (children, set or deferred, or a value) before it completes.
        let entries = frame.entry_count() as usize + own.len();
        debug_assert!(entries >= 2, "branch completed with {entries} entries");
        if !own.is_empty() && own.len() < metis_keccak::MIN_BATCH && own.iter().all(|d| d.pending().is_none()) {
            // Too few for a batch: wait for the siblings.
            let base = if first == 0 { 0 } else { self.deferred[first - 1].end };
            let mut start = base;
            let children = own
                .iter()
                .map(|d| {
                    let DeferredChild::Encoded(kind) = d.child else { unreachable!("none is pending") };
                    let rlp = self.deferred_rlp[start..d.end].to_vec();
                    start = d.end;
                    (d.nibble, kind, rlp)
                })
                .collect();
            self.deferred.truncate(first);
            self.deferred_rlp.truncate(base);
            let pending = PendingBranch { path: path.clone(), frame, children, rlp: Vec::new(), stored: false };
            self.pending_branches.push(pending);
            return Item::Pending { path, index: self.pending_branches.len() - 1 };
        }
        self.hang_deferred(&mut frame);
        self.complete(path, frame)
    }

    /// The branch item of a frame whose children are all set.
    fn complete(&mut self, path: Nibbles, frame: Frame) -> Item {
        self.branch_nodes += 1;
        let rlp = encode_branch(&frame.children, frame.value.as_deref());
        self.retain_proof(&path, &rlp);
        let stored = frame.value.is_none() && stores_record(frame.branch_mask, frame.stored_mask);
        if stored && self.retain_records {
            let children = frame.children.iter().flatten().copied().collect();
            // The frame's masks satisfy the record invariants: >= 2 children
            // (no value), masks the policy stores, and set_child keeps the subsets.
            match BranchRecord::new(frame.state_mask, frame.branch_mask, frame.stored_mask, children) {
                Ok(record) => self.records.push((path.clone(), record)),
                Err(e) => debug_assert!(false, "frame violates record invariants: {e}"),
            }
        }
        Item::Completed { path, rlp, stored }
    }

    /// Defers the hash of a child of the innermost open frame (at `depth`).
    fn defer(&mut self, depth: usize, nibble: u8, kind: ChildKind, rlp: &[u8]) {
        self.deferred_rlp.extend_from_slice(rlp);
        let end = self.deferred_rlp.len();
        self.deferred.push(Deferred { depth, nibble, end, child: DeferredChild::Encoded(kind) });
    }

    /// Index of the first deferred child of the innermost open frame, at
    /// `depth` (deeper frames completed and took theirs).
    fn deferred_of(&self, depth: usize) -> usize {
        let first = self.deferred.iter().rposition(|d| d.depth != depth).map_or(0, |i| i + 1);
        debug_assert!(self.deferred[first..].iter().all(|d| d.depth == depth));
        first
    }

    /// Hashes the children of pending branches `indices` in one batch and
    /// encodes the branches (their RLP into `pending_branches[i].rlp`).
    fn resolve_pending(&mut self, indices: &[usize]) {
        let inputs: Vec<&[u8]> = indices
            .iter()
            .flat_map(|&i| self.pending_branches[i].children.iter().map(|(_, _, rlp)| rlp.as_slice()))
            .collect();
        metis_keccak::keccak256_each(&inputs, &mut self.deferred_hashes);
        let mut hashes = std::mem::take(&mut self.deferred_hashes);
        let mut next = hashes.iter();
        for &i in indices {
            let path = self.pending_branches[i].path.clone();
            let mut frame = std::mem::replace(&mut self.pending_branches[i].frame, Frame::new(0));
            for (nibble, kind, _) in std::mem::take(&mut self.pending_branches[i].children) {
                frame.set_child(nibble, NodeRef::from_hash(*next.next().expect("one hash per child")), kind);
            }
            let Item::Completed { rlp, stored, .. } = self.complete(path, frame) else {
                unreachable!("complete gives a Completed")
            };
            self.pending_branches[i].rlp = rlp;
            self.pending_branches[i].stored = stored;
        }
        hashes.clear();
        self.deferred_hashes = hashes;
    }

    /// Pending branch `index`, hashed on its own (it hangs below an
    /// extension or is the top node). It is the last pending branch: a
    /// branch is pended only when it completes, and it is placed at once.
    fn complete_pending(&mut self, index: usize) -> Item {
        debug_assert_eq!(index + 1, self.pending_branches.len());
        self.resolve_pending(&[index]);
        let p = self.pending_branches.pop().expect("pending branch");
        Item::Completed { path: p.path, rlp: p.rlp, stored: p.stored }
    }

    /// Hashes the children deferred for `frame` (the innermost open frame)
    /// in one batch and sets them; pending branches among them first have
    /// their own children hashed, all in one batch.
    fn hang_deferred(&mut self, frame: &mut Frame) {
        let first = self.deferred_of(frame.depth);
        if first == self.deferred.len() {
            return;
        }
        let pending: Vec<usize> = self.deferred[first..].iter().filter_map(Deferred::pending).collect();
        if !pending.is_empty() {
            self.resolve_pending(&pending);
        }
        let base = if first == 0 { 0 } else { self.deferred[first - 1].end };
        let mut start = base;
        let rlps: Vec<&[u8]> = self.deferred[first..]
            .iter()
            .map(|d| match d.child {
                DeferredChild::Pending(i) => self.pending_branches[i].rlp.as_slice(),
                DeferredChild::Encoded(_) => {
                    let rlp = &self.deferred_rlp[start..d.end];
                    start = d.end;
                    rlp
                }
            })
            .collect();
        metis_keccak::keccak256_each(&rlps, &mut self.deferred_hashes);
        for (d, hash) in self.deferred[first..].iter().zip(&self.deferred_hashes) {
            let kind = match d.child {
                DeferredChild::Encoded(kind) => kind,
                DeferredChild::Pending(i) => ChildKind::Branch { stored: self.pending_branches[i].stored },
            };
            frame.set_child(d.nibble, NodeRef::from_hash(*hash), kind);
        }
        // This frame's pending branches were the last ones pended.
        if let Some(&lowest) = pending.first() {
            debug_assert!(pending.iter().all(|&i| i >= lowest));
            self.pending_branches.truncate(lowest);
        }
        self.deferred.truncate(first);
        self.deferred_rlp.truncate(base);
    }

    /// Places the last item and completes a pending top branch: the
    /// topmost node, a completed branch not hashed yet.
    fn take_top(&mut self) -> Result<Option<Item>, BuildError> {
        if let Some(last) = self.pending.take() {
            self.place(last, None)?;
        }
        debug_assert!(self.stack.is_empty());
        Ok(match self.top.take() {
            Some(Item::Pending { index, .. }) => Some(self.complete_pending(index)),
            other => other,
        })
    }

    /// The topmost node as callers see it (a completed branch hashed).
    fn subtrie_top(top: Option<Item>) -> Result<SubtrieTop, BuildError> {
        Ok(match top.map(Item::hashed) {
            None => SubtrieTop::Empty,
            Some(Item::Leaf { key, value, .. }) => SubtrieTop::Leaf { key, value },
            Some(Item::Branch { path, node_ref, stored }) => SubtrieTop::Branch { path, node_ref, stored },
            Some(Item::Slot { path, .. }) => return Err(BuildError::SlotNotUnderBranch(path)),
            Some(Item::Completed { .. } | Item::Pending { .. }) => unreachable!("hashed above"),
        })
    }

    /// Completes the trie and returns the root and whatever was requested.
    pub fn finish(mut self) -> Result<BuildOutput, BuildError> {
        let top = Self::subtrie_top(self.take_top()?)?;
        // A root branch was already retained as a proof node when it
        // completed; a root leaf or extension is only built here.
        if !self.proof_targets.is_empty() {
            if let Some(rlp) = top.root_wrapper_rlp() {
                self.retain_proof(&Nibbles::new(), &rlp);
            }
        }
        self.records.sort_by(|a, b| a.0.cmp(&b.0));
        self.proof_nodes.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(BuildOutput { top, records: self.records, proof_nodes: self.proof_nodes, branch_nodes: self.branch_nodes })
    }

    /// [`RootBuilder::finish`] up to the root's own keccak: the root node's
    /// RLP and the records (sorted by path). A caller that completes many
    /// small tries (the storage tries of a bulk load) hashes their roots
    /// together, eight at a time, instead of each alone. Proof targets are
    /// not supported (their nodes are left out).
    pub fn finish_unhashed(mut self) -> Result<(UnhashedRoot, Vec<(Nibbles, BranchRecord)>), BuildError> {
        debug_assert!(self.proof_targets.is_empty(), "proofs need finish");
        let root = match self.take_top()? {
            None => UnhashedRoot::Empty,
            Some(Item::Completed { path, rlp, .. }) if path.is_empty() => UnhashedRoot::Node(rlp),
            item => {
                let top = Self::subtrie_top(item)?;
                match top.root_wrapper_rlp() {
                    Some(rlp) => UnhashedRoot::Node(rlp),
                    None => UnhashedRoot::Hash(top.root_hash()),
                }
            }
        };
        self.records.sort_by(|a, b| a.0.cmp(&b.0));
        Ok((root, self.records))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: &[u8]) -> Nibbles {
        Nibbles::from_nibbles(v).unwrap()
    }

    #[test]
    fn rejects_misuse_without_panicking() {
        let mut b = RootBuilder::new();
        b.add_leaf(n(&[1, 2]), b"x").unwrap();
        assert!(matches!(b.add_leaf(n(&[1, 2]), b"y"), Err(BuildError::OutOfOrder { .. })));
        assert!(matches!(b.add_leaf(n(&[1]), b"y"), Err(BuildError::OutOfOrder { .. })));
        assert!(matches!(RootBuilder::new().add_leaf(n(&[1]), b""), Err(BuildError::EmptyValue(_))));

        let r = NodeRef::from_hash(B256::repeat_byte(1));
        let mut b = RootBuilder::new();
        b.add_branch(n(&[3]), r, false).unwrap();
        assert!(matches!(b.add_leaf(n(&[3, 4]), b"x"), Err(BuildError::InsideHashedSubtree { .. })));

        // A lone slot has no parent branch.
        let mut b = RootBuilder::new();
        b.add_slot(n(&[3]), r, ChildKind::Leaf).unwrap();
        assert!(matches!(b.finish(), Err(BuildError::SlotNotUnderBranch(_))));

        // A slot that would sit below an extension, not directly in a branch.
        let mut b = RootBuilder::new();
        b.add_slot(n(&[3, 1]), r, ChildKind::Leaf).unwrap();
        // The slot is placed (and rejected) once the next item shows where
        // it hangs.
        assert!(matches!(b.add_leaf(n(&[5, 0]), b"x"), Err(BuildError::SlotNotUnderBranch(_))));
    }

    #[test]
    fn hashed_subtrees_give_the_same_root_as_their_leaves() {
        let mut keys: Vec<Nibbles> = (0u8..40).map(|i| Nibbles::unpack(&[i / 8, i.wrapping_mul(37), 1])).collect();
        keys.sort();
        let full = {
            let mut b = RootBuilder::new().with_records(true);
            for k in &keys {
                b.add_leaf(k.clone(), k.as_packed()).unwrap();
            }
            b.finish().unwrap()
        };
        // Replace the leaves under first byte 2 by their branch node.
        let under = Nibbles::unpack(&[2]);
        let sub = {
            let mut b = RootBuilder::new();
            for k in keys.iter().filter(|k| k.starts_with(&under)) {
                b.add_leaf(k.clone(), k.as_packed()).unwrap();
            }
            b.finish().unwrap()
        };
        let SubtrieTop::Branch { path, node_ref, stored } = sub.top else { panic!("expected a branch") };
        let mut b = RootBuilder::new();
        let mut fed = false;
        for k in &keys {
            if k.starts_with(&under) {
                if !fed {
                    b.add_branch(path.clone(), node_ref, stored).unwrap();
                    fed = true;
                }
            } else {
                b.add_leaf(k.clone(), k.as_packed()).unwrap();
            }
        }
        assert_eq!(b.finish().unwrap().root(), full.root());
        assert!(full.branch_nodes > full.records.len());
    }
}
