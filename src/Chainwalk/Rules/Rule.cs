using Chainwalk.Extensions;
using Chainwalk.Net;

namespace Chainwalk.Rules;

/// <summary>Packet and byte counters of a rule or a built-in chain's policy.</summary>
public struct Counters
{
    public ulong Packets;
    public ulong Bytes;

    public Counters(ulong packets, ulong bytes)
    {
        Packets = packets;
        Bytes = bytes;
    }
}

/// <summary>
/// Where rules' counters live while they are in a compiled form (Engine/Compiled: beside the rule's flat entry). A rule
/// names its home (<see cref="Rule.CountersCell"/> reads through to it); the home finds the rule's counters.
/// </summary>
public abstract class RuleCounterHome
{
    /// <summary>The counters of <paramref name="rule"/>, which names this home.</summary>
    protected internal abstract ref Counters CountersOf(Rule rule);
}

/// <summary>One <c>-m NAME …</c> of a rule: the extension and its parsed options.</summary>
public sealed class MatchUse(XtExtension extension, ExtensionData data)
{
    public XtExtension Extension { get; } = extension;
    public ExtensionData Data { get; } = data;

    public MatchUse Clone() => new(Extension, Data.Clone());
}

/// <summary>The standard verdicts a rule or policy can name without an extension.</summary>
public static class Verdicts
{
    public const string Accept = "ACCEPT";
    public const string Drop = "DROP";
    public const string Return = "RETURN";
    public const string Queue = "QUEUE";

    public static bool IsStandard(string name) => name is Accept or Drop or Return or Queue;
}

/// <summary>
/// The <c>-j</c>/<c>-g</c> part of a rule: a standard verdict, a jump or goto to a user chain, or a
/// target extension with its options.
/// </summary>
public sealed class TargetUse
{
    /// <summary>The verdict's or chain's name, or the target extension's (its <see cref="XtExtension.RealName"/>).</summary>
    public required string Name
    {
        get => _nameOrExtension is string name ? name : _nameOrExtension is { } e ? System.Runtime.CompilerServices.Unsafe.As<XtExtension>(e).RealName : string.Empty;
        init
        {
            if (_nameOrExtension is XtExtension e) CheckName(value, e);
            else _nameOrExtension = value;
        }
    }

    /// <summary>True for <c>-g</c>: the chain is entered without a return address.</summary>
    public bool Goto { get; init; }

    /// <summary>The target extension, or null for a standard verdict or a user chain.</summary>
    public XtExtension? Extension
    {
        get => _nameOrExtension is string ? null : System.Runtime.CompilerServices.Unsafe.As<XtExtension?>(_nameOrExtension);
        init
        {
            if (value is null) return;
            if (_nameOrExtension is string name) CheckName(name, value);
            _nameOrExtension = value;
        }
    }

    /// <summary>
    /// The name of a verdict or chain, or the extension of a target extension (whose name is the extension's): one field
    /// for both keeps the object at 40 bytes (a kube-proxy set has a jump object per chain and a DNAT per endpoint).
    /// </summary>
    private object? _nameOrExtension;

    private static void CheckName(string name, XtExtension extension)
    {
        if (!string.Equals(name, extension.RealName, StringComparison.Ordinal))
            throw new ArgumentException($"a target extension's use is named as the extension ({extension.RealName}), not {name}", nameof(name));
    }

    /// <summary>The target extension's options; null for a standard verdict or a chain jump.</summary>
    public ExtensionData? Data
    {
        // Only data or a memo is ever stored: one method-table compare instead of a cast to the abstract type.
        get => _dataOrMemo is JumpMemo ? null : System.Runtime.CompilerServices.Unsafe.As<ExtensionData?>(_dataOrMemo);
        init => _dataOrMemo = value;
    }

    /// <summary>
    /// <see cref="Data"/> of a target extension, or <see cref="ResolvedJump"/> of a chain jump (which has no data): one
    /// field for both keeps the object small (a kube-proxy set has a jump object per chain and a DNAT per endpoint).
    /// </summary>
    private object? _dataOrMemo;

    public bool IsStandardVerdict => Kind == TargetKind.Standard;

    public bool IsChainJump => Kind == TargetKind.ChainJump;

    private enum TargetKind : byte { Unknown, Standard, ChainJump, Extension }

    private TargetKind _kind;

    /// <summary>What the target is, worked out once (its name and extension never change).</summary>
    private TargetKind Kind
    {
        get
        {
            if (_kind == TargetKind.Unknown)
                _kind = Extension is not null ? TargetKind.Extension : Verdicts.IsStandard(Name) ? TargetKind.Standard : TargetKind.ChainJump;
            return _kind;
        }
    }

    /// <summary>The walker's memo of a chain jump (Engine.Netfilter): the compiled form that resolved it and the chain, one object (written atomically).</summary>
    internal JumpMemo? ResolvedJump
    {
        get => _dataOrMemo as JumpMemo;
        set
        {
            // Only a target without data has room for the memo (chain jumps, the only ones the walker remembers).
            if (_dataOrMemo is null or JumpMemo) _dataOrMemo = value;
        }
    }

    internal sealed record JumpMemo(object ResolvedBy, Chain? Chain, string? Name)
    {
        /// <summary>The memo of <paramref name="chain"/> when it has the jump's name <paramref name="name"/>, keeping the chain's name string as checked.</summary>
        public static JumpMemo Of(object resolvedBy, Chain? chain, string name) =>
            chain is not null && string.Equals(chain.Name, name, StringComparison.Ordinal) ? new(resolvedBy, chain, chain.Name) : new(resolvedBy, null, null);
    }

    /// <summary>
    /// Copies the target. A standard verdict has nothing to copy, so the same object is shared, as the rules of a
    /// large ruleset share one ACCEPT (a chain jump gets its own object: the compiled form resolves jumps per object).
    /// </summary>
    public TargetUse Clone() => IsStandardVerdict && !Goto ? this : new() { Name = Name, Goto = Goto, Extension = Extension, Data = Data?.Clone() };

    private static readonly TargetUse[] StandardJumps =
        [new() { Name = Verdicts.Accept }, new() { Name = Verdicts.Drop }, new() { Name = Verdicts.Return }, new() { Name = Verdicts.Queue }];

    /// <summary>A <c>-j NAME</c> / <c>-g NAME</c> of a standard verdict or a user chain; the standard verdicts are shared objects.</summary>
    public static TargetUse Jump(string name, bool isGoto)
    {
        if (!isGoto)
        {
            foreach (TargetUse t in StandardJumps)
            {
                if (t.Name == name) return t;
            }
        }
        return new TargetUse { Name = name, Goto = isGoto };
    }
}

/// <summary>
/// A rule: the IP header part iptables parses itself (-s -d -i -o -p -f, each invertible), a list of
/// matches, and an optional target, with its packet and byte counters.
/// </summary>
/// <remarks>
/// Large rule sets hold hundreds of thousands of rules, so the object is kept at 56 bytes: an IPv4 -s/-d with a
/// prefix mask (every one iptables-save writes as /N) is a 32-bit address and a prefix length, and what most rules
/// do not have (interfaces, IPv6 or other wide addresses, masks that are not prefixes) lives in a side object made
/// on first use; the counters are in a compiled form's entry while the rule is in one, else in a cell made on the first
/// count. The properties read and write as if every field were here.
/// </remarks>
public sealed class Rule
{
    public required IpFamily Family
    {
        get => (IpFamily)_family;
        init => _family = (byte)value;
    }

    private byte _family;

    public IpNet Source
    {
        get => (_compact & SourceCompact) != 0 ? IpNet.V4(_sourceAddress, PrefixMask(_sourcePrefix)) : _extras?.Source ?? default;
        set
        {
            if (IsCompact(value))
            {
                _sourceAddress = value.AddressV4;
                _sourcePrefix = Prefix(value.MaskV4);
                _compact |= SourceCompact;
                if (_extras is { } x) x.Source = default;
                return;
            }
            _compact &= unchecked((ushort)~SourceCompact);
            if (_extras is not null || value != default) Extras.Source = value;
        }
    }

    public IpNet Destination
    {
        get => (_compact & DestinationCompact) != 0 ? IpNet.V4(_destinationAddress, PrefixMask(_destinationPrefix)) : _extras?.Destination ?? default;
        set
        {
            if (IsCompact(value))
            {
                _destinationAddress = value.AddressV4;
                _destinationPrefix = Prefix(value.MaskV4);
                _compact |= DestinationCompact;
                if (_extras is { } x) x.Destination = default;
                return;
            }
            _compact &= unchecked((ushort)~DestinationCompact);
            if (_extras is not null || value != default) Extras.Destination = value;
        }
    }

    public bool SourceInverted
    {
        get => (_compact & SourceInvertedBit) != 0;
        set => SetBit(SourceInvertedBit, value);
    }

    public bool DestinationInverted
    {
        get => (_compact & DestinationInvertedBit) != 0;
        set => SetBit(DestinationInvertedBit, value);
    }

    /// <summary>Input interface name ("" = any); a trailing '+' is a prefix wildcard.</summary>
    public string InInterface
    {
        get => _extras?.InInterface ?? string.Empty;
        set { if (value.Length > 0 || _extras is not null) Extras.InInterface = value; }
    }

    public string OutInterface
    {
        get => _extras?.OutInterface ?? string.Empty;
        set { if (value.Length > 0 || _extras is not null) Extras.OutInterface = value; }
    }

    public bool InInverted
    {
        get => (_compact & InInvertedBit) != 0;
        set => SetBit(InInvertedBit, value);
    }

    public bool OutInverted
    {
        get => (_compact & OutInvertedBit) != 0;
        set => SetBit(OutInvertedBit, value);
    }

    /// <summary>Layer-4 protocol number; 0 = any.</summary>
    public ushort Protocol { get; set; }

    public bool ProtocolInverted
    {
        get => (_compact & ProtocolInvertedBit) != 0;
        set => SetBit(ProtocolInvertedBit, value);
    }

    /// <summary>IPv4 <c>-f</c>: second and further fragments only (inverted: only unfragmented or first).</summary>
    public bool Fragment
    {
        get => (_compact & FragmentBit) != 0;
        set => SetBit(FragmentBit, value);
    }

    public bool FragmentInverted
    {
        get => (_compact & FragmentInvertedBit) != 0;
        set => SetBit(FragmentInvertedBit, value);
    }

    /// <summary>The rule's matches (by reference: <c>rule.Matches.Add(m)</c> changes the rule).</summary>
    public ref MatchList Matches => ref _matches;

    private MatchList _matches;

    public TargetUse? Target { get; set; }

    /// <summary>
    /// The rule's packet and byte counters (a copy; <see cref="CountersCell"/> to add to them). One place holds them at a
    /// time: a compiled form's entry while the rule is in one (<see cref="RuleCounterHome"/>: the flat walk counts beside
    /// the entry it has just read, no load of the rule object), else a small object of the rule's own made on the first
    /// count (a rule never counted holds none: [0:0]). Reads and writes go to wherever they are now.
    /// </summary>
    public Counters Counters
    {
        get => _side switch
        {
            null => default,
            RuleCounterHome h => h.CountersOf(this),
            CounterCell c => c.Value,
            RuleExtras x => x.Home is { } h ? h.CountersOf(this) : x.Counters,
            _ => default,
        };
        set
        {
            if ((value.Packets | value.Bytes) == 0 && _side is null) return;
            CountersCell = value;
        }
    }

    /// <summary>The rule's counters, to add to (made on first use when the rule has none yet).</summary>
    public ref Counters CountersCell
    {
        get
        {
            object? s = _side;
            if (s is RuleCounterHome h) return ref h.CountersOf(this);
            if (s is CounterCell c) return ref c.Value;
            return ref CountersCellSlow();
        }
    }

    private ref Counters CountersCellSlow()
    {
        if (_side is RuleExtras x)
        {
            if (x.Home is { } h) return ref h.CountersOf(this);
            return ref x.Counters;
        }
        var cell = new CounterCell();
        _side = cell;
        return ref cell.Value;
    }

    /// <summary>The compiled form holding the rule's counters, or null (the rule holds them).</summary>
    internal RuleCounterHome? CounterHome => _side is RuleCounterHome h ? h : (_side as RuleExtras)?.Home;

    /// <summary>Hands the rule's counters to <paramref name="home"/>: returns them as they are now (the home holds them from now on).</summary>
    internal Counters MoveCountersTo(RuleCounterHome home)
    {
        Counters now = Counters;
        if (_side is RuleExtras x)
        {
            x.Home = home;
            x.Counters = default;
        }
        else
        {
            _side = home;
        }
        return now;
    }

    /// <summary>Takes the counters back from the home that held them (<paramref name="value"/>: their value there).</summary>
    internal void TakeCountersBack(Counters value)
    {
        if (_side is RuleExtras x)
        {
            x.Home = null;
            x.Counters = value;
        }
        else
        {
            _side = (value.Packets | value.Bytes) != 0 ? new CounterCell { Value = value } : null;
        }
    }

    /// <summary>
    /// Set when the rule is known to be read back from its own iptables-save line unchanged (it was read from exactly
    /// that line, or the line was parsed again): the host store then does not check it again (see SaveFormCheck).
    /// </summary>
    public bool SaveFormVerified
    {
        get => (_compact & SaveFormVerifiedBit) != 0;
        set => SetBit(SaveFormVerifiedBit, value);
    }

    private const ushort SourceCompact = 1, DestinationCompact = 2, SourceInvertedBit = 4, DestinationInvertedBit = 8,
        InInvertedBit = 16, OutInvertedBit = 32, ProtocolInvertedBit = 64, FragmentBit = 128, FragmentInvertedBit = 256,
        SaveFormVerifiedBit = 512;

    /// <summary>Which of -s/-d are held in the 32-bit fields (an IPv4 address and prefix), the inversions, -f and <see cref="SaveFormVerified"/>.</summary>
    private ushort _compact;

    private void SetBit(ushort bit, bool on) => _compact = on ? (ushort)(_compact | bit) : (ushort)(_compact & ~bit);

    private uint _sourceAddress, _destinationAddress;

    /// <summary>The prefix lengths (0–32) of the compact -s/-d masks.</summary>
    private byte _sourcePrefix, _destinationPrefix;

    /// <summary>
    /// What the rule holds aside, in one field: nothing, its own counters (<see cref="CounterCell"/>), the compiled form
    /// holding them (<see cref="RuleCounterHome"/>), or the rarer fields (<see cref="RuleExtras"/>, with the counters or
    /// their home inside). The rule stays 56 bytes.
    /// </summary>
    private object? _side;

    private RuleExtras? _extras => _side as RuleExtras;

    private RuleExtras Extras
    {
        get
        {
            if (_side is RuleExtras x) return x;
            x = new RuleExtras();
            if (_side is CounterCell c) x.Counters = c.Value;
            else if (_side is RuleCounterHome h) x.Home = h;
            _side = x;
            return x;
        }
    }

    /// <summary>A rule's own counters, when it has counted and is in no compiled form.</summary>
    private sealed class CounterCell
    {
        public Counters Value;
    }

    /// <summary>An IPv4 net held in the compact fields: address and mask in 32 bits, the mask a prefix (ones then zeros).</summary>
    private static bool IsCompact(IpNet net) => net.IsV4In32Bits && (~net.MaskV4 & (~net.MaskV4 + 1)) == 0;

    private static byte Prefix(uint mask) => (byte)System.Numerics.BitOperations.PopCount(mask);

    private static uint PrefixMask(byte prefix) => prefix == 0 ? 0u : uint.MaxValue << (32 - prefix);

    /// <summary>The parts of a rule that most rules leave at their defaults.</summary>
    private sealed class RuleExtras
    {
        public IpNet Source, Destination;
        public string InInterface = string.Empty, OutInterface = string.Empty;

        /// <summary>The rule's counters (when <see cref="Home"/> is null).</summary>
        public Counters Counters;

        /// <summary>The compiled form holding the rule's counters, or null.</summary>
        public RuleCounterHome? Home;

        /// <summary>A copy with its own counters, <paramref name="counters"/>.</summary>
        public RuleExtras Copy(Counters counters)
        {
            var x = (RuleExtras)MemberwiseClone();
            x.Home = null;
            x.Counters = counters;
            return x;
        }
    }

    public Rule Clone()
    {
        var r = new Rule
        {
            Family = Family,
            Protocol = Protocol,
            Target = Target?.Clone(),
            _compact = _compact,
            _sourceAddress = _sourceAddress,
            _sourcePrefix = _sourcePrefix,
            _destinationAddress = _destinationAddress,
            _destinationPrefix = _destinationPrefix,
        };
        Counters counters = Counters;
        if (_side is RuleExtras x) r._side = x.Copy(counters);
        else r.Counters = counters;
        if (Matches.Count > 0)
        {
            var ms = new MatchUse[Matches.Count];
            for (int i = 0; i < ms.Length; i++) ms[i] = Matches[i].Clone();
            r.Matches.SetAll(ms);
        }
        return r;
    }
}
