using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;

namespace Chainwalk.Extensions.Matches;

/// <summary>A counter condition of <c>-m set</c> (IPSET_COUNTER_*).</summary>
public enum SetCounterOp : byte
{
    None = 0,
    Eq = 1,
    Ne = 2,
    Lt = 3,
    Gt = 4,
}

/// <summary>Options of <c>-m set</c> (struct xt_set_info_match_v4).</summary>
public sealed class SetData : ExtensionData
{
    public string SetName = string.Empty;

    /// <summary>Number of src/dst directions given (1-6).</summary>
    public byte Dim;

    /// <summary>Bit i (1..Dim) set = direction i is src, clear = dst.</summary>
    public byte DirFlags;

    /// <summary>! --match-set (IPSET_INV_MATCH).</summary>
    public bool Invert;

    public bool ReturnNomatch;
    public bool SkipCounterUpdate;
    public bool SkipSubcounterUpdate;
    public SetCounterOp PacketsOp;
    public ulong Packets;
    public SetCounterOp BytesOp;
    public ulong Bytes;

    /// <summary>Whether direction <paramref name="i"/> (1-based) is the source address/port.</summary>
    public bool IsSource(int i) => (DirFlags & (1 << i)) != 0;
}

/// <summary><c>-m set --match-set NAME src|dst[,…]</c> (libxt_set.c revision 4, xt_set.c): the set must exist.</summary>
public sealed class SetMatch : XtExtension<SetData>
{
    private const int OMatchSet = 0, OSet = 1, OReturnNomatch = 2, OUpdateCounters = 3, OPacketsEq = 4, OPacketsLt = 5,
        OPacketsGt = 6, OBytesEq = 7, OBytesLt = 8, OBytesGt = 9, OUpdateSubcounters = 10;

    private const int DimMax = 6;

    public override string Name => "set";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("match-set", OMatchSet, OptionArg.Required, OptFlags.Manual),
        new("set", OSet, OptionArg.Required, OptFlags.Manual),
        new("return-nomatch", OReturnNomatch, OptionArg.None, OptFlags.Manual),
        new("update-counters", OUpdateCounters, OptionArg.None, OptFlags.Manual),
        new("packets-eq", OPacketsEq, OptionArg.Required, OptFlags.Manual),
        new("packets-lt", OPacketsLt, OptionArg.Required, OptFlags.Manual),
        new("packets-gt", OPacketsGt, OptionArg.Required, OptFlags.Manual),
        new("bytes-eq", OBytesEq, OptionArg.Required, OptFlags.Manual),
        new("bytes-lt", OBytesLt, OptionArg.Required, OptFlags.Manual),
        new("bytes-gt", OBytesGt, OptionArg.Required, OptFlags.Manual),
        new("update-subcounters", OUpdateSubcounters, OptionArg.None, OptFlags.Manual),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, SetData d)
    {
        switch (option.Id)
        {
            case OUpdateSubcounters:
                if (invert) d.SkipSubcounterUpdate = true;
                break;
            case OBytesGt:
            case OBytesLt:
            case OBytesEq:
                if (d.BytesOp != SetCounterOp.None) throw ctx.Error("only one of the --bytes-[eq|lt|gt] is allowed");
                d.BytesOp = Op(ctx, option, invert);
                d.Bytes = Counter(ctx, argument!);
                break;
            case OPacketsGt:
            case OPacketsLt:
            case OPacketsEq:
                if (d.PacketsOp != SetCounterOp.None) throw ctx.Error("only one of the --packets-[eq|lt|gt] is allowed");
                d.PacketsOp = Op(ctx, option, invert);
                d.Packets = Counter(ctx, argument!);
                break;
            case OUpdateCounters:
                if (invert) d.SkipCounterUpdate = true;
                break;
            case OReturnNomatch:
                if (invert) throw ctx.Error("--return-nomatch flag cannot be inverted");
                d.ReturnNomatch = true;
                break;
            case OSet:
            case OMatchSet:
                {
                    if (option.Id == OSet) ctx.Warn("--set option deprecated, please use --match-set");
                    if (d.Dim != 0) throw ctx.Error("--match-set can be specified only once");
                    if (invert) d.Invert = true;
                    string? dirs = ctx.PeekArgument();
                    if (dirs is null || dirs.StartsWith('-') || dirs.StartsWith('!')) throw ctx.Error("--match-set requires two args.");
                    string name = argument!;
                    if (Encoding.UTF8.GetByteCount(name) > 31) throw ctx.Error($"setname `{name}' too long, max 31 characters.");
                    if (!KernelObjects.Current.IpSets.TryGetValue(name, out IpFamily? fam)) throw ctx.Error($"Set {name} doesn't exist.\n");
                    if (fam is { } f && f != ctx.Family)
                        throw ctx.Error($"The protocol family of set {name} is {(f == IpFamily.V4 ? "IPv4" : "IPv6")}, which is not applicable.\n");
                    d.SetName = name;
                    ParseDirs(ctx, dirs, d);
                    ctx.SkipArgument();
                    break;
                }
        }
    }

    private static SetCounterOp Op(ParseContext ctx, XtOption option, bool invert)
    {
        bool gt = option.Id is OBytesGt or OPacketsGt, lt = option.Id is OBytesLt or OPacketsLt;
        if ((gt || lt) && invert) throw ctx.Error($"--{option.Name} option cannot be inverted");
        return gt ? SetCounterOp.Gt : lt ? SetCounterOp.Lt : invert ? SetCounterOp.Ne : SetCounterOp.Eq;
    }

    private static ulong Counter(ParseContext ctx, string text)
    {
        if (!NumberParsing.TryParseCUnsigned(text, ulong.MaxValue, out ulong v)) throw ctx.Error($"Cannot parse {text} as a counter value");
        return v;
    }

    private static void ParseDirs(ParseContext ctx, string arg, SetData d)
    {
        string[] parts = arg.Split(',');
        int i = 0;
        while (d.Dim < DimMax && i < parts.Length)
        {
            d.Dim++;
            string p = parts[i++];
            if (p.StartsWith("src", StringComparison.Ordinal)) d.DirFlags |= (byte)(1 << d.Dim);
            else if (!p.StartsWith("dst", StringComparison.Ordinal))
                throw ctx.Error("You must spefify (the comma separated list of) 'src' or 'dst'.");
        }
        if (i < parts.Length) throw ctx.Error($"Can't be more src/dst options than {DimMax}.");
    }

    protected override void FinalCheck(ParseContext ctx, SetData d)
    {
        if (d.Given == 0) throw ctx.Error("You must specify `--match-set' with proper arguments");
    }

    private static void Append(StringBuilder sb, SetData d, string opt, string sep)
    {
        sb.Append(d.Invert ? " !" : string.Empty).Append(' ').Append(opt).Append(' ').Append(d.SetName);
        for (int i = 1; i <= d.Dim; i++) sb.Append(i == 1 ? ' ' : ',').Append(d.IsSource(i) ? "src" : "dst");
        if (d.ReturnNomatch) sb.Append(' ').Append(sep).Append("return-nomatch");
        if (d.SkipCounterUpdate) sb.Append(" ! ").Append(sep).Append("update-counters");
        if (d.SkipSubcounterUpdate) sb.Append(" ! ").Append(sep).Append("update-subcounters");
        AppendCounter(sb, d.PacketsOp, d.Packets, "packets", sep);
        AppendCounter(sb, d.BytesOp, d.Bytes, "bytes", sep);
    }

    private static void AppendCounter(StringBuilder sb, SetCounterOp op, ulong value, string name, string sep)
    {
        string? text = op switch
        {
            SetCounterOp.Eq => $" {sep}{name}-eq ",
            SetCounterOp.Ne => $" ! {sep}{name}-eq ",
            SetCounterOp.Lt => $" {sep}{name}-lt ",
            SetCounterOp.Gt => $" {sep}{name}-gt ",
            _ => null,
        };
        if (text is not null) sb.Append(text).Append(XtParse.Dec(value));
    }

    protected override void Save(StringBuilder sb, SetData d, IpFamily family) => Append(sb, d, "--match-set", "--");

    protected override void Print(StringBuilder sb, SetData d, IpFamily family, bool numeric) => Append(sb, d, "match-set", string.Empty);

    /// <summary>
    /// xt_set.c set_match_v4: ip_set_test on the host's set (<see cref="Netfilter.Ipsets"/>) with the rule's
    /// src/dst flags; a nomatch entry is a non-match (--return-nomatch reverses plain and nomatch entries); the entry's counters are
    /// updated (not with ! --update-counters) and then compared with --packets-*/--bytes-*; ! inverts. A set
    /// that does not exist matches nothing (the kernel would have refused the rule).
    /// </summary>
    protected override bool Match(PacketContext ctx, SetData d)
    {
        bool hit = false;
        if (ctx.Netfilter.Ipsets is { } store && store.Get(d.SetName) is { } set)
        {
            Func<Host.IpsetMember, bool>? check = d.PacketsOp == SetCounterOp.None && d.BytesOp == SetCounterOp.None
                ? null
                : m => Compare((ulong)(m.Packets ?? 0), d.PacketsOp, d.Packets) && Compare((ulong)(m.Bytes ?? 0), d.BytesOp, d.Bytes);
            IpsetTestResult r = IpsetEval.Test(ctx, store, set, new IpsetOptions(d.Dim, d.DirFlags), !d.SkipCounterUpdate,
                !d.SkipSubcounterUpdate, check);
            // ip_set_test: with --return-nomatch on a type that has nomatch entries, the answer is reversed:
            // a nomatch entry matches and a plain one does not.
            hit = d.ReturnNomatch && set.IsNet ? r == IpsetTestResult.NoMatch : r == IpsetTestResult.Match;
        }
        return hit ^ d.Invert;
    }

    /// <summary>ip_set_match_counter.</summary>
    private static bool Compare(ulong counter, SetCounterOp op, ulong value) => op switch
    {
        SetCounterOp.Eq => counter == value,
        SetCounterOp.Ne => counter != value,
        SetCounterOp.Lt => counter < value,
        SetCounterOp.Gt => counter > value,
        _ => true,
    };
}
