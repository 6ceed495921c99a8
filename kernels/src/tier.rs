//! Which instruction set the kernels run with: detected once at run time, and forced lower with
//! `BIDDER_CPU_FEATURES` so that every path can be tested and measured on any machine.
//!
//! The crate is built for x86-64-v3 (AVX2, FMA, F16C) by default, so one binary runs on every
//! AVX2 server; the AVX-512 kernels are compiled with `#[target_feature]` and chosen here only
//! where the CPU has the instructions. A forced tier is a ceiling: `avx2` on an AVX-512 machine
//! runs exactly what an AVX2-only machine would (no AVX-VNNI either), `generic` runs our
//! portable loops.

use std::fmt;
use std::sync::OnceLock;

/// The environment variable that forces a tier (`generic`, `avx2` or `avx512`).
pub const TIER_VARIABLE: &str = "BIDDER_CPU_FEATURES";

/// A kernel tier, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Portable Rust loops (candle's own dot products still use what the build allows).
    Generic,
    /// 256-bit AVX2 with FMA and F16C: every x86-64-v3 CPU.
    Avx2,
    /// 512-bit AVX-512 F/BW/VL, with VNNI where the CPU has it.
    Avx512,
}

/// A tier name that is not one, or a tier this CPU cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierError(String);

impl fmt::Display for TierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TierError {}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Generic, Tier::Avx2, Tier::Avx512];

    pub fn name(self) -> &'static str {
        match self {
            Tier::Generic => "generic",
            Tier::Avx2 => "avx2",
            Tier::Avx512 => "avx512",
        }
    }

    /// A tier by name, if this CPU can run it.
    pub fn parse(name: &str) -> Result<Tier, TierError> {
        let tier = match name.trim().to_ascii_lowercase().as_str() {
            "generic" => Tier::Generic,
            "avx2" => Tier::Avx2,
            "avx512" => Tier::Avx512,
            other => return Err(TierError(format!("{other:?} is not a CPU tier: use generic, avx2 or avx512"))),
        };
        match tier <= Tier::best() {
            true => Ok(tier),
            false => Err(TierError(format!(
                "this CPU cannot run the {} kernels (its best tier is {})",
                tier.name(),
                Tier::best().name()
            ))),
        }
    }

    /// The best tier this CPU runs.
    pub fn best() -> Tier {
        let detected = CpuFeatures::detected();
        if detected.avx512 {
            Tier::Avx512
        } else if detected.avx2 {
            Tier::Avx2
        } else {
            Tier::Generic
        }
    }

    /// Every tier this CPU runs, lowest first (what the kernel tests go through).
    pub fn supported() -> impl Iterator<Item = Tier> {
        Tier::ALL.into_iter().filter(|tier| *tier <= Tier::best())
    }

    /// The tier the kernels use: `BIDDER_CPU_FEATURES` if set (checked by [`Tier::requested`]
    /// at start-up; a bad value here falls back to the best tier), else the best one.
    pub fn active() -> Tier {
        static ACTIVE: OnceLock<Tier> = OnceLock::new();
        *ACTIVE.get_or_init(|| Tier::requested().ok().flatten().unwrap_or_else(Tier::best))
    }

    /// The tier `BIDDER_CPU_FEATURES` asks for, `None` if it is unset or empty.
    pub fn requested() -> Result<Option<Tier>, TierError> {
        match std::env::var(TIER_VARIABLE) {
            Ok(value) if !value.trim().is_empty() => {
                Tier::parse(&value).map(Some).map_err(|e| TierError(format!("{TIER_VARIABLE}: {e}")))
            }
            _ => Ok(None),
        }
    }

    /// What the kernels of this tier may use on this CPU.
    pub fn features(self) -> CpuFeatures {
        let detected = CpuFeatures::detected();
        match self {
            Tier::Generic => CpuFeatures::default(),
            Tier::Avx2 => CpuFeatures { avx2: detected.avx2, ..CpuFeatures::default() },
            Tier::Avx512 => detected,
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Instruction-set extensions a kernel may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    /// AVX2 with FMA and F16C.
    pub avx2: bool,
    /// AVX-VNNI: `vpdpbusd` on 256 bits (Alder Lake, Sapphire Rapids, Zen 5).
    pub avx_vnni: bool,
    /// AVX-512 F, BW and VL.
    pub avx512: bool,
    /// AVX-512 VNNI on top of that.
    pub avx512_vnni: bool,
}

impl CpuFeatures {
    /// This CPU's, detected once.
    pub fn detected() -> CpuFeatures {
        static DETECTED: OnceLock<CpuFeatures> = OnceLock::new();
        *DETECTED.get_or_init(detect)
    }
}

#[cfg(target_arch = "x86_64")]
fn detect() -> CpuFeatures {
    let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c");
    let avx512 = avx2
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl");
    CpuFeatures {
        avx2,
        avx_vnni: avx2 && is_x86_feature_detected!("avxvnni"),
        avx512,
        avx512_vnni: avx512 && is_x86_feature_detected!("avx512vnni"),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> CpuFeatures {
    CpuFeatures::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_a_tier_above_the_cpu_is_refused() {
        for tier in Tier::supported() {
            assert_eq!(Tier::parse(tier.name()), Ok(tier));
            assert_eq!(Tier::parse(&tier.name().to_uppercase()), Ok(tier));
        }
        assert!(Tier::parse("sse").unwrap_err().to_string().contains("generic, avx2 or avx512"));
        if Tier::best() < Tier::Avx512 {
            assert!(Tier::parse("avx512").unwrap_err().to_string().contains("cannot run"));
        }
        assert_eq!(Tier::supported().next(), Some(Tier::Generic));
    }

    #[test]
    fn a_lower_tier_never_offers_a_higher_tiers_instructions() {
        let avx2 = Tier::Avx2.features();
        assert!(!avx2.avx512 && !avx2.avx512_vnni && !avx2.avx_vnni);
        assert_eq!(Tier::Generic.features(), CpuFeatures::default());
        assert_eq!(Tier::Avx512.features(), CpuFeatures::detected());
    }
}
