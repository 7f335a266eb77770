//! Which Ethereum fork rules apply to a mainnet block.

use revm::primitives::hardfork::SpecId;

/// The fork active on Ethereum mainnet at a block number and timestamp
/// (block numbers up to the Merge, timestamps after).
pub fn mainnet_spec(number: u64, timestamp: u64) -> SpecId {
    const BY_TIMESTAMP: [(u64, SpecId); 4] = [
        (1_764_798_551, SpecId::OSAKA),
        (1_746_612_311, SpecId::PRAGUE),
        (1_710_338_135, SpecId::CANCUN),
        (1_681_338_455, SpecId::SHANGHAI),
    ];
    // Difficulty-bomb forks (Muir/Arrow/Gray Glacier) and the DAO fork change
    // no execution rule revm models: revm has no spec id for them.
    const BY_NUMBER: [(u64, SpecId); 10] = [
        (15_537_394, SpecId::MERGE),
        (12_965_000, SpecId::LONDON),
        (12_244_000, SpecId::BERLIN),
        (9_069_000, SpecId::ISTANBUL),
        (7_280_000, SpecId::PETERSBURG),
        (4_370_000, SpecId::BYZANTIUM),
        (2_675_000, SpecId::SPURIOUS_DRAGON),
        (2_463_000, SpecId::TANGERINE),
        (1_150_000, SpecId::HOMESTEAD),
        (0, SpecId::FRONTIER),
    ];
    if number >= 15_537_394 {
        if let Some((_, spec)) = BY_TIMESTAMP.iter().find(|(t, _)| timestamp >= *t) {
            return *spec;
        }
    }
    BY_NUMBER.iter().find(|(n, _)| number >= *n).map_or(SpecId::FRONTIER, |(_, s)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_boundaries() {
        assert_eq!(mainnet_spec(46_147, 0), SpecId::FRONTIER);
        assert_eq!(mainnet_spec(1_150_000, 0), SpecId::HOMESTEAD);
        assert_eq!(mainnet_spec(4_369_999, 0), SpecId::SPURIOUS_DRAGON);
        assert_eq!(mainnet_spec(4_370_000, 0), SpecId::BYZANTIUM);
        assert_eq!(mainnet_spec(12_965_000, 0), SpecId::LONDON);
        assert_eq!(mainnet_spec(15_537_394, 1_663_224_179), SpecId::MERGE);
        assert_eq!(mainnet_spec(17_034_870, 1_681_338_455), SpecId::SHANGHAI);
        assert_eq!(mainnet_spec(19_426_587, 1_710_338_135), SpecId::CANCUN);
    }
}
