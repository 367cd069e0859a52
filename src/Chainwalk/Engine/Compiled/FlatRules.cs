using System.Runtime.InteropServices;
using Chainwalk.Extensions.Matches;
using Chainwalk.Rules;
using CtInfo = Chainwalk.Engine.CtInfo;

namespace Chainwalk.Engine.Compiled;

/// <summary>
/// The flat form of a chain's rules: one <see cref="FlatEntry"/> (56 bytes, the rule's counters included) per rule, all of a compiled form's chains in one array with what the
/// walker reads of it, so that a rule the walk passes costs one cache line instead of the ~10 objects a
/// <see cref="Rule"/> is made of (the rule, its match array, each match use and its data, its target use, the jump's
/// chain and rule list). Built from the <see cref="Rule"/> objects, which stay the truth for everything but the
/// counters: those move into the entry (the rule reads through to them: what -L/-S/-Z/save read), and a match or target
/// the entry does not hold inline is evaluated through the rule's own <see cref="MatchUse"/> / <see cref="TargetUse"/>.
/// </summary>
/// <remarks>
/// Inline: the IPv4 header part (-s/-d with masks and inversions, -p with its inversion), and per match position, in
/// the rule's order (the order matters: statistic draws a random number when it is reached), the kinds kube-proxy's
/// rules use: comment (nothing to test), tcp/udp port ranges (no inversion, flags or options), mark, statistic
/// random, conntrack/state testing the state alone. Every other match is evaluated through its <see cref="MatchUse"/> at its position; a rule with interfaces,
/// -f, an IPv6 or wide address, a non-prefix mask, or more than 7 matches is tested whole by the walker's generic rule test.
/// The target is a kind (standard verdict, jump or goto with the entered chain's number, extension); a target
/// extension and its data are read from the rule's <see cref="TargetUse"/> when the rule matches (one more object then,
/// 16 bytes less per entry for every rule); a MARK target of a rule without match operands is applied from the entry
/// (<see cref="FlatFlags.InlineMark"/>).
/// </remarks>
[StructLayout(LayoutKind.Auto)]
public struct FlatEntry
{
    /// <summary>The rule: its generic matches, and its target extension and data (read only when the rule matches).</summary>
    public Rule Rule;

    /// <summary>
    /// The rule's counters while this entry is their home (the rule names the compiled form: <see cref="Rule.CountersCell"/>
    /// reads through to here): a matching rule is counted beside the entry the walk has just read, without a load of the
    /// rule object. Not used when <see cref="FlatFlags.CountOnRule"/> is set.
    /// </summary>
    public Counters Counters;

    /// <summary>-s and -d: the network's address (no bits outside its prefix), compared on the bits above its shift.</summary>
    public uint Source, Destination;

    /// <summary>Per match position (at most 7), lowest 4 bits first, a <see cref="FlatOp"/>; 0 ends the list.</summary>
    public uint Ops
    {
        readonly get => _opsAndTarget & OpsMask;
        set => _opsAndTarget = (_opsAndTarget & ~OpsMask) | (value & OpsMask);
    }

    /// <summary>The rule's target kind (what the walk does when the rule matches).</summary>
    public FlatTarget Target
    {
        readonly get => (FlatTarget)(_opsAndTarget >> 28);
        set => _opsAndTarget = (_opsAndTarget & OpsMask) | (uint)value << 28;
    }

    private const uint OpsMask = 0x0FFF_FFFF;

    /// <summary><see cref="Ops"/> in the low 28 bits, <see cref="Target"/> in the top 4 (the entry stays 56 bytes with its counters).</summary>
    private uint _opsAndTarget;

    /// <summary>
    /// The operands of the rule's one inline test that has any (the first of ports, mark, statistic, ctstate in the rule's order;
    /// a second such match is evaluated through its <see cref="MatchUse"/>): ports: <see cref="A"/> the source range,
    /// <see cref="B"/> the destination range (low 16 bits the lowest port, high 16 bits the highest); mark: the value and
    /// the mask; statistic --mode random: the probability scaled by 2^31 (xt_statistic.c) in <see cref="A"/>; ctstate: the
    /// answers by ctinfo in <see cref="A"/>. Without any: for <see cref="FlatFlags.InlineMark"/>, MARK's value and mask.
    /// </summary>
    public uint A, B;

    /// <summary>
    /// For a jump or goto: the entered chain's number in the compiled form (its <see cref="FlatSpan"/>); -1: looked up by name.
    /// For a target extension: its data's slot in <see cref="CompiledRules.Targets"/> (so that a match does not load the
    /// rule and its <see cref="TargetUse"/> first; the extension is <see cref="JumpStart"/>'s); -1: read from the rule.
    /// For <see cref="FlatTarget.Dnat"/>: the address (see <see cref="DnatRange"/>).
    /// </summary>
    public int Jump;

    /// <summary>
    /// For a jump or goto: where the entered chain's entries were in <see cref="CompiledRules.Entries"/> when this entry
    /// was built (-1: none). A hint for prefetching them together with the chain's span, before the jump is taken (the
    /// span is the truth: a chain rebuilt elsewhere after an edit leaves the hint stale, which costs a wasted prefetch only).
    /// For a target extension with a data slot (<see cref="Jump"/>): the extension's number in <see cref="CompiledRules.TargetExtensions"/>.
    /// For <see cref="FlatTarget.Dnat"/>: the port and the range's flags (see <see cref="DnatRange"/>).
    /// </summary>
    public int JumpStart;

    /// <summary>-p (an IPv4 protocol number; a rule naming another is generic).</summary>
    public byte Protocol;

    /// <summary>32 minus the prefix length of -s / -d (32: any address): a packet's address is in the network when it
    /// differs from <see cref="Source"/> / <see cref="Destination"/> only in the bits below the shift.</summary>
    public byte SourceShift, DestinationShift;

    public FlatFlags Flags;

    public readonly uint SourceMask => Mask(SourceShift);
    public readonly uint DestinationMask => Mask(DestinationShift);

    private static uint Mask(byte shift) => shift >= 32 ? 0u : uint.MaxValue << shift;

    public readonly ushort SportLow => (ushort)A;
    public readonly ushort SportHigh => (ushort)(A >> 16);
    public readonly ushort DportLow => (ushort)B;
    public readonly ushort DportHigh => (ushort)(B >> 16);
    public readonly uint MarkValue => A;
    public readonly uint MarkMask => B;
    public readonly uint Probability => A;

    /// <summary>
    /// For <see cref="FlatTarget.Dnat"/>: the range as <see cref="Nat.NatRange2.From"/> makes it of the target's data, from
    /// <see cref="Jump"/> (the address) and <see cref="JumpStart"/> (the port in the low 16 bits, the flags above).
    /// </summary>
    public readonly Nat.NatRange2 DnatRange => new((Extensions.Targets.NatRangeFlags)((uint)JumpStart >> 16), (uint)Jump, (uint)Jump,
        (ushort)JumpStart, (ushort)JumpStart);

    /// <summary>
    /// Makes the entry <see cref="FlatTarget.Dnat"/> when its target is DNAT with IPv4 range data of one address and at most
    /// one port, no base port (what <see cref="DnatRange"/> gives back exactly); false (the entry unchanged) otherwise.
    /// </summary>
    internal static bool TryDnat(ref FlatEntry e, TargetUse t)
    {
        if (e.Target != FlatTarget.Extension || t.Extension is not Extensions.Targets.DnatTarget
            || t.Data is not Extensions.Targets.NatRangeData d || d.GetType() != typeof(Extensions.Targets.NatRangeData)) return false;
        if (d.MinAddress != d.MaxAddress || d.MinAddress > uint.MaxValue || d.MinPort != d.MaxPort || d.BasePort != 0 || (uint)d.Flags > ushort.MaxValue) return false;
        e.Target = FlatTarget.Dnat;
        e.Jump = (int)(uint)d.MinAddress;
        e.JumpStart = (int)((uint)d.MinPort | (uint)d.Flags << 16);
        return true;
    }

    /// <summary>An entry that only names the rule: tested whole through the rule objects (a chain whose flat form is behind its edits).</summary>
    public static FlatEntry Generic(Rule rule) => new()
    {
        Rule = rule,
        Flags = FlatFlags.Generic,
        Target = TargetOf(rule.Target),
        Jump = -1,
        JumpStart = -1,
    };

    /// <summary>The rule's flat entry; jumps are resolved by <paramref name="jump"/> (the chain's number, or -1).</summary>
    public static FlatEntry Of(Rule rule, Func<TargetUse, int> jump) => Of(rule, jump, static (f, t) => f(t));

    /// <summary>The rule's flat entry, jumps resolved by <paramref name="jump"/> with <paramref name="state"/> (no closure per chain).</summary>
    internal static FlatEntry Of<TState>(Rule rule, TState state, Func<TState, TargetUse, int> jump)
    {
        FlatEntry e = Generic(rule);
        if (e.Target is FlatTarget.Jump or FlatTarget.Goto) e.Jump = jump(state, rule.Target!);
        if (!TryInline(rule, ref e)) e.Flags = FlatFlags.Generic;
        return e;
    }

    internal static FlatTarget TargetOf(TargetUse? t)
    {
        if (t is null) return FlatTarget.None;
        if (t.IsStandardVerdict)
        {
            return t.Name switch
            {
                Verdicts.Accept => FlatTarget.Accept,
                Verdicts.Drop => FlatTarget.Drop,
                Verdicts.Queue => FlatTarget.Queue,
                _ => FlatTarget.Return,
            };
        }
        if (t.IsChainJump) return t.Goto ? FlatTarget.Goto : FlatTarget.Jump;
        return FlatTarget.Extension;
    }

    private static bool TryInline(Rule r, ref FlatEntry e)
    {
        if (r.Family != Net.IpFamily.V4 || r.Fragment || r.FragmentInverted) return false;
        if (r.InInterface.Length != 0 || r.OutInterface.Length != 0 || r.InInverted || r.OutInverted) return false;
        Net.IpNet s = r.Source, d = r.Destination;
        if (!s.IsV4In32Bits && !s.IsAny) return false;
        if (!d.IsV4In32Bits && !d.IsAny) return false;
        // ip_packet_match: (addr & mask) != rule address. Inline for a prefix mask and an address without bits outside
        // it (what iptables writes); any other (a non-contiguous mask, or an address that then never matches) is generic.
        if (!Prefix((uint)s.Address, (uint)s.Mask, out e.SourceShift) || !Prefix((uint)d.Address, (uint)d.Mask, out e.DestinationShift)) return false;
        e.Source = (uint)s.Address;
        e.Destination = (uint)d.Address;
        FlatFlags f = FlatFlags.None;
        if (r.SourceInverted) f |= FlatFlags.SourceInverted;
        if (r.DestinationInverted) f |= FlatFlags.DestinationInverted;
        if (r.Protocol != 0 || r.ProtocolInverted) f |= FlatFlags.Protocol;
        if (r.ProtocolInverted) f |= FlatFlags.ProtocolInverted;
        if (r.Protocol > byte.MaxValue) return false;
        e.Protocol = (byte)r.Protocol;
        int n = r.Matches.Count;
        if (n > 7) return false;
        uint ops = 0;
        int last = -1;
        // The entry holds the operands of one inline test (A, B): a second match that needs some is generic.
        bool operands = false;
        for (int m = 0; m < n; m++)
        {
            MatchUse use = r.Matches[m];
            FlatOp op = FlatOp.Generic;
            switch (use.Data)
            {
                case CommentData when use.Extension is CommentMatch:
                    op = FlatOp.Skip;
                    break;
                case TcpData t when use.Extension is TcpMatch && !operands:
                    // Inline only with -p tcp (not inverted): the walker then has the packet's TCP header (FlowKey), so
                    // xt_tcpudp's and nft's port compares agree and neither can hot-drop.
                    if (r.Protocol == 6 && !r.ProtocolInverted && !t.InvSport && !t.InvDport && !t.InvOption && t.Option == 0
                        && t.FlagMask == 0 && t.FlagCompare == 0 && !t.InvFlags)
                    {
                        operands = true;
                        op = FlatOp.Ports;
                        (e.A, e.B) = (Range(t.SportMin, t.SportMax), Range(t.DportMin, t.DportMax));
                    }
                    break;
                case UdpData u when use.Extension is UdpMatch && !operands:
                    if (r.Protocol == 17 && !r.ProtocolInverted && !u.InvSport && !u.InvDport)
                    {
                        operands = true;
                        op = FlatOp.Ports;
                        (e.A, e.B) = (Range(u.SportMin, u.SportMax), Range(u.DportMin, u.DportMax));
                    }
                    break;
                case MarkData md when use.Extension is MarkMatch && !operands:
                    operands = true;
                    op = md.Invert ? FlatOp.MarkInverted : FlatOp.Mark;
                    (e.A, e.B) = (md.Mark, md.Mask);
                    break;
                case StatisticData sd when use.Extension is StatisticMatch && !sd.Nth && !operands:
                    operands = true;
                    op = sd.Invert ? FlatOp.RandomInverted : FlatOp.Random;
                    e.A = sd.Probability;
                    break;
                case ConntrackData cd when use.Extension is ConntrackMatch or StateMatch && !operands && CtStateAnswers(cd) is uint answers:
                    operands = true;
                    op = FlatOp.CtState;
                    e.A = answers;
                    break;
            }
            ops |= (uint)op << (4 * m);
            if (op != FlatOp.Skip) last = m;
        }
        // Trailing comments test nothing: the list ends after the last position that tests something.
        e.Ops = last < 0 ? 0 : (uint)(ops & ((1UL << (4 * (last + 1))) - 1));
        for (uint o = e.Ops; o != 0; o >>= 4)
        {
            if ((FlatOp)(o & 0xF) == FlatOp.Generic) f |= FlatFlags.GenericOps;
        }
        // MARK without match operands: its mask and value in A and B, applied by the walker (xt_mark.c's mark_tg). The
        // entry stays a target extension with its data slot; the flag says the walker need not call it, and that the
        // flow key holds after it (a mark is not a header field).
        if (!operands && r.Target is { Extension: Extensions.Targets.MarkTarget, Data: Extensions.Targets.MarkTargetData mt })
        {
            f |= FlatFlags.InlineMark;
            (e.A, e.B) = (mt.Mark, mt.Mask);
        }
        e.Flags = f;
        return true;
    }

    /// <summary>
    /// For <c>-m conntrack</c> / <c>-m state</c> testing the state alone (kube-proxy's --ctstate NEW, INVALID,
    /// RELATED,ESTABLISHED): the answer for each <see cref="CtInfo"/> value (bit n: the packet's ctinfo is n; 0 also for a
    /// packet whose ctinfo names a state but that has no entry), inversion included; null when the match needs more than
    /// the ctinfo (other options, or SNAT/DNAT among the states, which read the entry's status). conntrack_mt
    /// (xt_conntrack.c): a tracked packet's state bit is ESTABLISHED, RELATED or NEW by its ctinfo, an untracked one's
    /// UNTRACKED, else INVALID; with only the state asked nothing else is tested. Mirrors <see cref="ConntrackMatch.Evaluate"/>.
    /// </summary>
    internal static uint? CtStateAnswers(ConntrackData d)
    {
        if ((d.MatchFlags & ConntrackFlags.State) == 0 || (d.MatchFlags & ~(ConntrackFlags.State | ConntrackFlags.StateAlias)) != 0) return null;
        if ((d.MatchFlags & ConntrackFlags.StateAlias) == 0 && (d.States & (CtState.Snat | CtState.Dnat)) != 0) return null;
        bool invert = (d.InvertFlags & ConntrackFlags.State) != 0;
        uint answers = 0;
        for (int n = 0; n <= (int)CtInfo.Untracked; n++)
        {
            CtState bit = (CtInfo)n switch
            {
                CtInfo.Established or CtInfo.EstablishedReply => CtState.Established,
                CtInfo.Related or CtInfo.RelatedReply => CtState.Related,
                CtInfo.New => CtState.New,
                CtInfo.Untracked => CtState.Untracked,
                _ => CtState.Invalid,
            };
            if (((d.States & bit) != 0) != invert) answers |= 1u << n;
        }
        return answers;
    }

    private static uint Range(ushort low, ushort high) => low | (uint)high << 16;

    /// <summary>Whether <paramref name="mask"/> is a prefix and <paramref name="address"/> has no bits outside it; the shift (32 minus the prefix length).</summary>
    private static bool Prefix(uint address, uint mask, out byte shift)
    {
        int bits = System.Numerics.BitOperations.PopCount(mask);
        shift = (byte)(32 - bits);
        return Mask(shift) == mask && (address & ~mask) == 0;
    }

}

/// <summary>What a <see cref="FlatEntry"/> tests of the IP header, and whether the rule is tested whole instead.</summary>
[Flags]
public enum FlatFlags : byte
{
    None = 0,
    SourceInverted = 1,
    DestinationInverted = 2,

    /// <summary>-p given (or inverted): the protocol is compared.</summary>
    Protocol = 4,
    ProtocolInverted = 8,

    /// <summary>The rule is tested through its objects (the walker's generic rule test): nothing else of the entry is read but the target.</summary>
    Generic = 16,

    /// <summary>Some match position is <see cref="FlatOp.Generic"/>: the walker sets the context's rule and chain before testing it.</summary>
    GenericOps = 32,

    /// <summary>The rule's counters are not this entry's (<see cref="FlatEntry.Counters"/>): counted through the rule (a rule object met twice in the form, or a form whose rules another took).</summary>
    CountOnRule = 64,

    /// <summary>
    /// The target is MARK and the entry holds its value in <see cref="FlatEntry.A"/> and its mask in <see cref="FlatEntry.B"/>
    /// (no match operands): the walker sets the mark itself, and the flow key holds after it.
    /// </summary>
    InlineMark = 128,
}

/// <summary>One match position of a <see cref="FlatEntry"/>.</summary>
public enum FlatOp : byte
{
    End = 0,

    /// <summary>-m comment: matches every packet.</summary>
    Skip = 1,
    Ports = 2,
    Mark = 3,
    MarkInverted = 4,
    Random = 5,
    RandomInverted = 6,

    /// <summary>Evaluated through the rule's <see cref="MatchUse"/> at this position.</summary>
    Generic = 7,

    /// <summary>
    /// -m conntrack / -m state testing the state alone: <see cref="FlatEntry.A"/> bit n is the answer for a packet whose
    /// <see cref="CtInfo"/> is n (<see cref="FlatEntry.CtStateAnswers"/>).
    /// </summary>
    CtState = 8,
}

/// <summary>A <see cref="FlatEntry"/>'s target.</summary>
public enum FlatTarget : byte
{
    /// <summary>No target: the rule is counted and the walk goes on.</summary>
    None,
    Accept,
    Drop,
    Queue,
    Return,
    Jump,
    Goto,

    /// <summary>A target extension (the rule's <see cref="TargetUse"/>).</summary>
    Extension,

    /// <summary>
    /// DNAT to one IPv4 address and at most one port (kube-proxy's endpoints): the range is held in the entry itself
    /// (<see cref="FlatEntry.DnatRange"/>, in <see cref="FlatEntry.Jump"/> and <see cref="FlatEntry.JumpStart"/>), so it
    /// comes with the entry's line. Set by the compiled form's build (<see cref="FlatEntry.TryDnat"/>); else such a rule is
    /// <see cref="Extension"/>.
    /// </summary>
    Dnat,
}

/// <summary>
/// What the compiled form keeps per chain (by the chain's number, 32 bytes): where its entries are in the form's one
/// <see cref="CompiledRules.Entries"/> array (<c>[Start, Start + Count)</c>, room up to <see cref="Capacity"/>), the
/// chain's <see cref="Chain.Edits"/> they were built at, its index, and whether a walk starting in it goes the flat way.
/// No object per chain: a kube-proxy set has a chain per endpoint (≈ 195k chains at 30k services).
/// </summary>
internal struct FlatSpan
{
    public Chain Chain;

    /// <summary>
    /// The chain's index: its number in <see cref="CompiledRules.SpanIndexes"/> (-1: none; few chains have one, so the span
    /// holds 4 bytes, not a reference). Checked against the chain per use, as <see cref="CompiledRules.For"/> does.
    /// </summary>
    public int IndexNo;

    /// <summary>The chain's first entry in <see cref="CompiledRules.Entries"/>; -1: no entries built (an index-decided built-in chain).</summary>
    public int Start;

    /// <summary>Entries in use (the chain's length when built) and slots held at <see cref="Start"/>.</summary>
    public int Count, Capacity;

    /// <summary>The chain's <see cref="Chain.Edits"/> when its entries were built (-1: not built).</summary>
    public int Edits;

    /// <summary>The chain's table (its <see cref="FlatTable"/> in the form).</summary>
    public short Table;

    /// <summary>
    /// Whether a walk starting in this chain (a base chain) goes the flat way: not for a chain without rules, nor for one
    /// its index decides alone (one indexed run, every target a plain ACCEPT or DROP: ClassBench's shape), where the
    /// index walk reads nothing the entries would save and the flat walk's set-up cost more (measured with
    /// <c>--only probe</c>: acl1_10k 9.6 → 7.1 Mpps cold). Set when the entries or the index are built.
    /// </summary>
    public bool Worth;
}

/// <summary>
/// A view of one chain's flat form in a <see cref="CompiledRules"/> (its number there): the entries, index and edits
/// the form holds for it. Read live (not a copy): after an edit and a rebuild it shows the entries as they are then.
/// </summary>
public readonly struct FlatChain
{
    /// <summary>Longer chains are not rebuilt on the packet path after an edit: their edits are an overlay of the index, walked through the rule objects.</summary>
    public const int RebuildLimit = 4096;

    private readonly CompiledRules _form;

    internal FlatChain(CompiledRules form, int number)
    {
        _form = form;
        Number = number;
    }

    /// <summary>The chain's number in the compiled form (what jumps to it hold).</summary>
    public int Number { get; }

    private ref FlatSpan Span => ref _form.Spans[Number];

    public Chain Chain => Span.Chain;

    /// <summary>The chain's entries as built (empty when none were built).</summary>
    public ReadOnlySpan<FlatEntry> Entries => Span.Start < 0 ? default : _form.Entries.AsSpan(Span.Start, Span.Count);

    /// <summary>Where the entries start in <see cref="CompiledRules.Entries"/> (-1: none built).</summary>
    public int Start => Span.Start;

    /// <summary>The chain's <see cref="Chain.Edits"/> when its entries were built (-1: not built).</summary>
    public int Edits => Span.Edits;

    public ChainIndex? Index => _form.IndexOf(in Span);

    /// <inheritdoc cref="FlatSpan.Worth"/>
    public bool Worth => Span.Worth;
}

/// <summary>A table's part of a compiled form: the table's <see cref="Table.RuleEdits"/> when every chain of it was compiled.</summary>
internal sealed class FlatTable(Table table)
{
    public Table Table { get; } = table;

    /// <summary>While the table's <see cref="Table.RuleEdits"/> is this, every chain's entries, index and jumps are in step (no per-chain checks).</summary>
    public int Edits = -1;
}
