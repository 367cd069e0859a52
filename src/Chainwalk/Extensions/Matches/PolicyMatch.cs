using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Matches;

/// <summary>One element of an IPsec policy (struct xt_policy_elem).</summary>
public sealed class PolicyElement
{
    public bool MatchReqid, MatchSpi, MatchSaddr, MatchDaddr, MatchProto, MatchMode;
    public bool InvReqid, InvSpi, InvSaddr, InvDaddr, InvProto, InvMode;
    public uint Reqid;
    public uint Spi;
    public UInt128 Saddr, Smask, Daddr, Dmask;
    public byte Proto;

    /// <summary>false = transport (XT_POLICY_MODE_TRANSPORT), true = tunnel.</summary>
    public bool Tunnel;

    public bool Empty => !(MatchReqid || MatchSpi || MatchSaddr || MatchDaddr || MatchProto || MatchMode);

    public PolicyElement Clone() => (PolicyElement)MemberwiseClone();
}

/// <summary>Options of <c>-m policy</c> (struct xt_policy_info).</summary>
public sealed class PolicyData : ExtensionData
{
    public bool DirIn;
    public bool DirOut;

    /// <summary>--pol none (XT_POLICY_MATCH_NONE); otherwise ipsec.</summary>
    public bool PolicyNone;

    public bool Strict;

    /// <summary>Up to four elements; <see cref="Length"/> of them are in use.</summary>
    public PolicyElement[] Elements = [new(), new(), new(), new()];

    public int Length;

    public override ExtensionData Clone()
    {
        var c = (PolicyData)MemberwiseClone();
        c.Elements = Elements.Select(e => e.Clone()).ToArray();
        return c;
    }
}

/// <summary><c>-m policy</c> (libxt_policy.c, xt_policy.c): IPsec policy of the packet.</summary>
public sealed class PolicyMatch : XtExtension<PolicyData>
{
    private const int ODir = 0, OPol = 1, OStrict = 2, OReqid = 3, OSpi = 4, OProto = 5, OMode = 6, OTunnelSrc = 7,
        OTunnelDst = 8, ONext = 9;

    private const int MaxElements = 4;

    public override string Name => "policy";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("dir", ODir),
        new("pol", OPol),
        new("strict", OStrict, OptionArg.None),
        new("reqid", OReqid, OptionArg.Required, OptFlags.Multi | OptFlags.Invert),
        new("spi", OSpi, OptionArg.Required, OptFlags.Multi | OptFlags.Invert),
        new("tunnel-src", OTunnelSrc, OptionArg.Required, OptFlags.Multi | OptFlags.Invert),
        new("tunnel-dst", OTunnelDst, OptionArg.Required, OptFlags.Multi | OptFlags.Invert),
        new("proto", OProto, OptionArg.Required, OptFlags.Multi | OptFlags.Invert),
        new("mode", OMode, OptionArg.Required, OptFlags.Multi | OptFlags.Invert),
        new("next", ONext, OptionArg.None, OptFlags.Multi) { Also = 1 << OStrict },
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, PolicyData d)
    {
        string arg = argument ?? string.Empty;
        PolicyElement e = d.Elements[d.Length];
        switch (option.Id)
        {
            case ODir:
                if (arg == "in") d.DirIn = true;
                else if (arg == "out") d.DirOut = true;
                else throw ctx.Error($"policy_match: invalid dir \"{arg}\"");
                break;
            case OPol:
                if (arg == "none") d.PolicyNone = true;
                else if (arg != "ipsec") throw ctx.Error($"policy match: invalid policy \"{arg}\"");
                break;
            case OStrict:
                d.Strict = true;
                break;
            case OReqid:
                {
                    uint v = (uint)XtParse.UIntBad(arg, 0, uint.MaxValue, Name, option.Name);
                    if (e.MatchReqid) throw ctx.Error("policy match: double --reqid option");
                    e.MatchReqid = true;
                    e.InvReqid = invert;
                    e.Reqid = v;
                    break;
                }
            case OSpi:
                {
                    uint v = (uint)XtParse.UIntBad(arg, 0, uint.MaxValue, Name, option.Name);
                    if (e.MatchSpi) throw ctx.Error("policy match: double --spi option");
                    e.MatchSpi = true;
                    e.InvSpi = invert;
                    e.Spi = v;
                    break;
                }
            case OTunnelSrc:
                {
                    var (a, m) = HostMask(ctx, arg, option.Name);
                    if (e.MatchSaddr) throw ctx.Error("policy match: double --tunnel-src option");
                    e.MatchSaddr = true;
                    e.InvSaddr = invert;
                    (e.Saddr, e.Smask) = (a, m);
                    break;
                }
            case OTunnelDst:
                {
                    var (a, m) = HostMask(ctx, arg, option.Name);
                    if (e.MatchDaddr) throw ctx.Error("policy match: double --tunnel-dst option");
                    e.MatchDaddr = true;
                    e.InvDaddr = invert;
                    (e.Daddr, e.Dmask) = (a, m);
                    break;
                }
            case OProto:
                {
                    ushort p = Protocols.Parse(arg.ToLowerInvariant(), ctx.Names);
                    if (e.MatchProto) throw ctx.Error("policy match: double --proto option");
                    e.Proto = (byte)p;
                    if (p is not (51 or 50 or 108)) throw ctx.Error("policy match: protocol must be ah/esp/ipcomp");
                    e.MatchProto = true;
                    e.InvProto = invert;
                    break;
                }
            case OMode:
                if (e.MatchMode) throw ctx.Error("policy match: double --mode option");
                e.MatchMode = true;
                e.InvMode = invert;
                if (arg == "transport") e.Tunnel = false;
                else if (arg == "tunnel") e.Tunnel = true;
                else throw ctx.Error($"policy match: invalid mode \"{arg}\"");
                break;
            case ONext:
                if (++d.Length == MaxElements) throw ctx.Error("policy match: maximum policy depth reached");
                break;
        }
    }

    /// <summary>XTTYPE_HOSTMASK: "host[/len|/mask]"; the address is kept as given (not masked).</summary>
    private (UInt128 Addr, UInt128 Mask) HostMask(ParseContext ctx, string arg, string option)
    {
        int slash = arg.IndexOf('/', StringComparison.Ordinal);
        UInt128 full = IpNet.FullMask(ctx.Family);
        if (slash < 0) return (XtParse.Host(arg, ctx.Family, ctx.Names), full);
        UInt128 a = XtParse.Host(arg[..slash], ctx.Family, ctx.Names);
        int len = XtParse.PrefixOrMask(arg[(slash + 1)..], ctx.Family, Name, option);
        return (a, len == XtParse.NonContiguousPrefix ? full : IpNet.PrefixMask(ctx.Family, len));
    }

    protected override void FinalCheck(ParseContext ctx, PolicyData d)
    {
        if (!d.DirIn && !d.DirOut) throw ctx.Error("policy match: neither --dir in nor --dir out specified");
        if (d.PolicyNone)
        {
            if (d.Strict) throw ctx.Error("policy match: policy none but --strict given");
            if (d.Length != 0) throw ctx.Error("policy match: policy none but policy given");
        }
        else
        {
            d.Length++;
        }
        for (int i = 0; i < d.Length; i++)
        {
            PolicyElement e = d.Elements[i];
            if (d.Strict && e.Empty)
                throw ctx.Error($"policy match: empty policy element {i}. --strict is in effect, but at least one of reqid, spi, tunnel-src, tunnel-dst, proto or mode is required.");
            if ((e.MatchSaddr || e.MatchDaddr) && ((e.Tunnel && e.InvMode) || (!e.Tunnel && !e.InvMode)))
                throw ctx.Error("policy match: --tunnel-src/--tunnel-dst is only valid in tunnel mode");
        }
    }

    /// <summary>policy_mt_check: an inbound policy only where packets arrive, an outbound one only where they leave.</summary>
    protected override string? CheckEntry(RuleCheckContext ctx, PolicyData d)
    {
        if (!d.DirIn && !d.DirOut) return RulesetEditor.InvalidArgument;
        if (d.DirIn && (ctx.Hooks & (HookMask.Postrouting | HookMask.Output)) != 0) return RulesetEditor.InvalidArgument;
        if (d.DirOut && (ctx.Hooks & (HookMask.Prerouting | HookMask.Input)) != 0) return RulesetEditor.InvalidArgument;
        return null;
    }

    private static string AddrMask(UInt128 a, UInt128 m, IpFamily family)
    {
        string text = IpNet.FormatAddress(a, family);
        if (m == IpNet.FullMask(family)) return text;
        int len = IpNet.PopCount(m);
        UInt128 expect = IpNet.PrefixMask(family, len);
        return m == expect ? text + "/" + XtParse.Dec((ulong)len) : text + "/" + IpNet.FormatAddress(m, family);
    }

    private static void Entry(StringBuilder sb, PolicyElement e, string prefix, bool numeric, IpFamily family)
    {
        if (e.MatchReqid) sb.Append(e.InvReqid ? " !" : string.Empty).Append(' ').Append(prefix).Append("reqid ").Append(XtParse.Dec(e.Reqid));
        if (e.MatchSpi) sb.Append(e.InvSpi ? " !" : string.Empty).Append(' ').Append(prefix).Append("spi ").Append(XtParse.Hex(e.Spi));
        if (e.MatchProto)
        {
            string? name = numeric ? null : NameDb.Printing.ProtocolName(e.Proto);
            sb.Append(e.InvProto ? " !" : string.Empty).Append(' ').Append(prefix).Append("proto ").Append(name ?? XtParse.Dec(e.Proto));
        }
        if (e.MatchMode) sb.Append(e.InvMode ? " !" : string.Empty).Append(' ').Append(prefix).Append("mode ").Append(e.Tunnel ? "tunnel" : "transport");
        if (e.MatchDaddr) sb.Append(e.InvDaddr ? " !" : string.Empty).Append(' ').Append(prefix).Append("tunnel-dst ").Append(AddrMask(e.Daddr, e.Dmask, family));
        if (e.MatchSaddr) sb.Append(e.InvSaddr ? " !" : string.Empty).Append(' ').Append(prefix).Append("tunnel-src ").Append(AddrMask(e.Saddr, e.Smask, family));
    }

    private static void Flags(StringBuilder sb, PolicyData d, string prefix)
    {
        sb.Append(' ').Append(prefix).Append(d.DirIn ? "dir in" : "dir out");
        sb.Append(' ').Append(prefix).Append(d.PolicyNone ? "pol none" : "pol ipsec");
        if (d.Strict) sb.Append(' ').Append(prefix).Append("strict");
    }

    protected override void Save(StringBuilder sb, PolicyData d, IpFamily family)
    {
        Flags(sb, d, "--");
        for (int i = 0; i < d.Length; i++)
        {
            Entry(sb, d.Elements[i], "--", false, family);
            if (i + 1 < d.Length) sb.Append(" --next");
        }
    }

    protected override void Print(StringBuilder sb, PolicyData d, IpFamily family, bool numeric)
    {
        sb.Append(" policy match");
        Flags(sb, d, string.Empty);
        for (int i = 0; i < d.Length; i++)
        {
            if (d.Length > 1) sb.Append(" [").Append(XtParse.Dec((ulong)i)).Append(']');
            Entry(sb, d.Elements[i], string.Empty, numeric, family);
        }
    }

    /// <summary>
    /// xt_policy.c: the virtual host has no IPsec, so no packet has a security path (in) or an xfrm
    /// bundle (out): --pol none matches and --pol ipsec does not, whatever the elements say.
    /// </summary>
    protected override bool Match(PacketContext ctx, PolicyData d) => d.PolicyNone;
}
