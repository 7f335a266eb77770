//! `Db::verify`: reads every reachable page, re-checks every checksum and
//! structural invariant, and checks that reachable and free pages partition
//! the file. Holds the writer lock so that the free space does not move
//! underneath the check.

use crate::btree::leaf::{self, ValueRef};
use crate::btree::{branch, TreeRoot, MAX_DEPTH};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::history::{self, ChangeSet, VersionRecord};
use crate::meta::{self, Meta};
use crate::page::{self, PageKind};
use crate::snapshot::Snapshot;
use crate::tables::{self, Table};

/// Most problems listed before the check stops collecting.
const MAX_PROBLEMS: usize = 100;

/// Per-table results.
#[derive(Clone, Debug, Default)]
pub struct TableCheck {
    /// Table name.
    pub name: &'static str,
    /// Entries counted in the leaves.
    pub entries: u64,
    /// Pages used (nodes and value runs).
    pub pages: u64,
    /// Levels (0 = empty, 1 = a single leaf).
    pub depth: u8,
}

/// Outcome of a verification.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    /// Version checked.
    pub version: Option<u64>,
    /// Pages whose checksum was recomputed.
    pub pages_checked: u64,
    /// Pages in the file (high-water mark).
    pub page_count: u64,
    /// Free or quarantined pages.
    pub free_pages: u64,
    /// Per-table figures.
    pub tables: Vec<TableCheck>,
    /// Everything found wrong (empty when the database is sound).
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// True when no problem was found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

struct Checker<'a> {
    snap: &'a Snapshot,
    ps: usize,
    salt: u64,
    seen: Vec<u64>,
    report: VerifyReport,
    progress: &'a mut dyn FnMut(u64, u64),
}

impl Checker<'_> {
    fn problem(&mut self, p: String) {
        if self.report.problems.len() < MAX_PROBLEMS {
            self.report.problems.push(p);
        }
    }

    /// Marks pages as reachable; false if one was already reached (shared or cyclic).
    fn mark(&mut self, first: u64, n: u64, what: &str) -> bool {
        for id in first..first + n {
            let (w, b) = ((id / 64) as usize, id % 64);
            if id >= self.report.page_count || w >= self.seen.len() {
                self.problem(format!("{what}: page {id} outside the file"));
                return false;
            }
            if self.seen[w] & (1 << b) != 0 {
                self.problem(format!("{what}: page {id} referenced twice"));
                return false;
            }
            self.seen[w] |= 1 << b;
        }
        self.report.pages_checked += n;
        if self.report.pages_checked % 4096 < n {
            (self.progress)(self.report.pages_checked, self.report.page_count);
        }
        true
    }

    /// Pages `[first, first + n)` read from the file (not through the map:
    /// a full check of a large database would leave all of it mapped), or
    /// `None` with the failure recorded.
    fn read(&mut self, first: u64, n: u64, what: &str) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        match self.snap.read_raw_pages(first, n, &mut buf) {
            Ok(()) => Some(buf),
            Err(e) => {
                self.problem(format!("{what}: pages {first}..{}: {e}", first + n));
                None
            }
        }
    }

    /// Checks the run at `id` that a reference says holds `len` payload
    /// bytes. Returns the pages it counts for and, when sound, its bytes.
    fn check_run(&mut self, id: u64, len: u32, what: &str) -> (u64, Option<Vec<u8>>) {
        let n = page::pages_for_run(len as usize, self.ps);
        if !self.mark(id, n, what) {
            return (0, None);
        }
        let Some(b) = self.read(id, n, what) else { return (n, None) };
        if !page::verify_checksum(&b, self.salt, id) {
            self.problem(format!("{what}: run at page {id}: checksum mismatch"));
        } else if page::kind(&b) != Some(PageKind::Run)
            || page::run_pages(&b) as u64 != n
            || page::get_u64(&b, page::RUN_LEN_OFFSET) != len as u64
        {
            self.problem(format!("{what}: run at page {id}: header does not match its reference"));
        } else {
            return (n, Some(b));
        }
        (n, None)
    }

    /// Walks a subtree; keys must lie in `[lo, hi)`. Returns (entries, pages).
    fn walk(
        &mut self,
        t: Table,
        id: u64,
        level: u8,
        lo: Option<Vec<u8>>,
        hi: Option<Vec<u8>>,
        depth: usize,
    ) -> (u64, u64) {
        let what = t.name();
        if depth > MAX_DEPTH || !self.mark(id, 1, what) {
            return (0, 0);
        }
        let Some(p) = self.read(id, 1, what) else {
            return (0, 1);
        };
        if !page::verify_checksum(&p, self.salt, id) {
            self.problem(format!("{what}: page {id}: checksum mismatch"));
            return (0, 1);
        }
        if p[crate::page::TABLE_BYTE] != t.0 {
            self.problem(format!("{what}: page {id}: header names table {}", p[crate::page::TABLE_BYTE]));
        }
        let in_range = |k: &[u8]| lo.as_deref().is_none_or(|l| k >= l) && hi.as_deref().is_none_or(|h| k < h);
        match (page::kind(&p), level) {
            (Some(PageKind::Leaf), 0) => {
                if let Err(m) = leaf::check(&p) {
                    self.problem(format!("{what}: leaf {id}: {}", m.0));
                    return (0, 1);
                }
                let n = leaf::count(&p);
                if n == 0 {
                    self.problem(format!("{what}: leaf {id} is empty"));
                }
                let mut prev: Option<Vec<u8>> = None;
                let mut pages = 1;
                for i in 0..n {
                    match leaf::entry(&p, i) {
                        Err(m) => self.problem(format!("{what}: leaf {id} entry {i}: {}", m.0)),
                        Ok((k, v)) => {
                            if prev.as_deref().is_some_and(|pk| pk >= k) {
                                self.problem(format!("{what}: leaf {id}: keys out of order at {i}"));
                            }
                            if !in_range(k) {
                                self.problem(format!("{what}: leaf {id}: key outside its parent's range"));
                            }
                            if let ValueRef::Run { page, len } = v {
                                // A value run holds the owning key, then the value.
                                let payload_len = 2 + k.len() + len as usize;
                                let (n, run) = self.check_run(page, payload_len as u32, what);
                                pages += n;
                                if let Some(b) = run {
                                    let owner = b
                                        .get(page::RUN_PAYLOAD_OFFSET..page::RUN_PAYLOAD_OFFSET + payload_len)
                                        .and_then(crate::btree::split_value_run)
                                        .map(|(key, _)| key == k);
                                    if owner != Some(true) {
                                        self.problem(format!("{what}: value run at page {page} does not name its key"));
                                    }
                                }
                            }
                            prev = Some(k.to_vec());
                        }
                    }
                }
                (n as u64, pages)
            }
            (Some(PageKind::Branch), l) if l > 0 => {
                if let Err(m) = branch::check(&p) {
                    self.problem(format!("{what}: branch {id}: {}", m.0));
                    return (0, 1);
                }
                if branch::level(&p) != l {
                    self.problem(format!("{what}: branch {id}: level {} at depth of level {l}", branch::level(&p)));
                    return (0, 1);
                }
                let n = branch::count(&p);
                let mut seps = Vec::with_capacity(n);
                for i in 0..n {
                    match branch::separator(&p, i) {
                        Ok(s) => seps.push(s.to_vec()),
                        Err(m) => {
                            self.problem(format!("{what}: branch {id}: {}", m.0));
                            return (0, 1);
                        }
                    }
                }
                if seps.windows(2).any(|w| w[0] >= w[1]) || seps.iter().any(|s| !in_range(s)) {
                    self.problem(format!("{what}: branch {id}: separators out of order or range"));
                }
                let (mut entries, mut pages) = (0, 1);
                for i in 0..=n {
                    let clo = if i == 0 { lo.clone() } else { Some(seps[i - 1].clone()) };
                    let chi = if i == n { hi.clone() } else { Some(seps[i].clone()) };
                    let (e, pg) = self.walk(t, branch::child(&p, i), l - 1, clo, chi, depth + 1);
                    entries += e;
                    pages += pg;
                }
                (entries, pages)
            }
            _ => {
                self.problem(format!("{what}: page {id}: wrong kind for level {level}"));
                (0, 1)
            }
        }
    }
}

impl Db {
    /// Checks every reachable page and invariant of the newest version.
    /// `progress(done, total)` is called now and then with page counts.
    pub fn verify(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<VerifyReport> {
        let w = self.inner.writer.lock().map_err(|_| Error::Poisoned { cause: "a writer panicked".into() })?;
        let snap = self.snapshot(None)?;
        let page_count = snap.state.page_count;
        let mut ck = Checker {
            snap: &snap,
            ps: self.inner.page_size,
            salt: self.inner.salt,
            seen: vec![0u64; page_count.div_ceil(64) as usize],
            report: VerifyReport { version: snap.version(), page_count, ..Default::default() },
            progress,
        };
        // Meta pages and reserved head of the file.
        for id in 0..self.inner.first_page {
            ck.mark(id, 1, "meta");
        }
        for info in tables::ALL {
            let root: TreeRoot = snap.root(info.table);
            let mut tc = TableCheck {
                name: info.name,
                depth: if root.is_empty() { 0 } else { root.level + 1 },
                ..Default::default()
            };
            if !root.is_empty() {
                let (e, p) = ck.walk(info.table, root.page, root.level, None, None, 0);
                tc.entries = e;
                tc.pages = p;
                if e != root.entries {
                    ck.problem(format!("{}: meta records {} entries, leaves hold {e}", info.name, root.entries));
                }
            }
            ck.report.tables.push(tc);
        }
        // Tables outside the registry must be empty.
        for (i, root) in snap.state.tables.iter().enumerate() {
            if tables::info(Table(i as u8)).is_none() && !root.is_empty() {
                ck.problem(format!("undefined table slot {i} has a root"));
            }
        }
        if let Err(e) = check_history(&mut ck) {
            ck.problem(format!("history: {e}"));
        }
        // Free list of the durable meta, and the allocator's free space.
        if let Some((first, n)) = w.blob {
            ck.mark(first, n, "free list");
        }
        let unreachable = w.alloc.unreachable();
        ck.report.free_pages = unreachable.len() as u64;
        for &p in &unreachable {
            let (wd, b) = ((p / 64) as usize, p % 64);
            if p >= page_count || ck.seen[wd] & (1 << b) != 0 {
                ck.problem(format!("page {p} is both free and reachable (or outside the file)"));
            } else {
                ck.seen[wd] |= 1 << b;
            }
        }
        let lost = (0..page_count).filter(|&p| ck.seen[(p / 64) as usize] & (1 << (p % 64)) == 0).count();
        if lost > 0 {
            ck.problem(format!("{lost} pages are neither reachable nor free (leaked)"));
        }
        drop(w);
        check_metas(self, &mut ck.report);
        (ck.progress)(ck.report.pages_checked, page_count);
        Ok(ck.report)
    }
}

/// Version records: one per retained version; their change sets are sorted
/// runs of versioned-table keys. Marks the change-set pages as reachable.
fn check_history(ck: &mut Checker<'_>) -> Result<()> {
    let snap = ck.snap;
    let Some(latest) = snap.latest_version() else { return Ok(()) };
    let mut expected = snap.state.oldest;
    let mut c = snap.range(tables::VERSIONS, &[])?;
    let mut records = Vec::new();
    while let Some((k, v)) = c.next()? {
        match VersionRecord::decode(v) {
            Some(r) if k == history::version_key(expected) => records.push((expected, r)),
            _ => {
                ck.problem(format!("versions: expected a record for version {expected}"));
                return Ok(());
            }
        }
        expected += 1;
    }
    if expected != latest + 1 {
        ck.problem(format!("versions: records stop at {expected}, latest is {latest}"));
    }
    for (v, r) in records {
        if r.changes_page == 0 {
            if r.changes != 0 {
                ck.problem(format!("version {v}: {} changes but no change set", r.changes));
            }
            continue;
        }
        let (_, Some(bytes)) = ck.check_run(r.changes_page, r.changes_len as u32, "change set") else { continue };
        let payload = &bytes[page::RUN_PAYLOAD_OFFSET..page::RUN_PAYLOAD_OFFSET + r.changes_len as usize];
        match ChangeSet::parse(payload) {
            Err(e) => ck.problem(format!("version {v}: {e}")),
            Ok(set) => {
                if set.len() as u64 != r.changes {
                    ck.problem(format!("version {v}: record counts {} changes, set holds {}", r.changes, set.len()));
                }
                let mut prev: Option<(Table, Vec<u8>)> = None;
                for i in 0..set.len() {
                    match set.entry(i) {
                        Err(e) => {
                            ck.problem(format!("version {v}: {e}"));
                            break;
                        }
                        Ok(e) => {
                            if !e.table.versioned()
                                || prev.as_ref().is_some_and(|(t, k)| (*t, &k[..]) >= (e.table, e.key))
                            {
                                ck.problem(format!(
                                    "version {v}: change set entries out of order or of an unversioned table"
                                ));
                                break;
                            }
                            prev = Some((e.table, e.key.to_vec()));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn check_metas(db: &Db, report: &mut VerifyReport) {
    let mut valid = 0;
    for (slot, off) in meta::META_OFFSETS.iter().enumerate() {
        let mut buf = vec![0u8; meta::META_LEN];
        if db.inner.storage.read_at(&mut buf, *off).is_ok() && Meta::decode(&buf, slot).is_ok() {
            valid += 1;
        }
    }
    if valid == 0 {
        report.problems.push("no valid meta page on disk".into());
    }
}
