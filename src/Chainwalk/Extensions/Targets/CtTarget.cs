using Chainwalk.Conntrack;
using Chainwalk.Engine;
using System.Text;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>CT revision 2 (struct xt_ct_target_info_v1): the template conntrack entry a packet gets.</summary>
public sealed class CtData : ExtensionData
{
    public const ushort FlagNotrack = 0x1, FlagZoneDirOrig = 0x2, FlagZoneDirRepl = 0x4, FlagZoneMark = 0x8, FlagNotrackAlias = 0x10;

    /// <summary>XT_CT_* flags.</summary>
    public ushort Flags;

    public ushort Zone;

    /// <summary>Bit i = conntrack event i (IPCT_NEW = 0 … IPCT_SECMARK = 9).</summary>
    public uint CtEvents;

    /// <summary>Bit 0 = IPEXP_NEW.</summary>
    public uint ExpEvents;

    /// <summary>Helper name, at most 15 bytes.</summary>
    public string Helper = string.Empty;

    /// <summary>Timeout policy name, at most 31 bytes.</summary>
    public string Timeout = string.Empty;
}

/// <summary>
/// <c>-j CT</c> revision 2 (libxt_CT.c, xt_CT.c): raw table only. --helper needs a protocol the helper
/// serves (<c>-p</c>, not inverted) and a helper the kernel has; --timeout needs a policy (there are none).
/// </summary>
public sealed class CtTarget : XtExtension<CtData>
{
    private const int ONotrack = 0, OHelper = 1, OTimeout = 2, OCtEvents = 3, OExpEvents = 4, OZone = 5, OZoneOrig = 6, OZoneReply = 7;

    internal static readonly string[] CtEventNames =
        ["new", "related", "destroy", "reply", "assured", "protoinfo", "helper", "mark", "natseqinfo", "secmark"];

    internal static readonly string[] ExpEventNames = ["new"];

    /// <summary>The conntrack helpers this kernel registers: name, protocol, and whether IPv6 has it.</summary>
    private static readonly (string Name, ushort Proto, bool V6)[] Helpers =
    [
        ("ftp", Protocols.Tcp, true), ("tftp", Protocols.Udp, true), ("irc", Protocols.Tcp, false),
        ("sip", Protocols.Tcp, true), ("sip", Protocols.Udp, true), ("amanda", Protocols.Udp, true),
        ("pptp", Protocols.Tcp, false), ("sane", Protocols.Tcp, true), ("netbios-ns", Protocols.Udp, false),
        ("snmp", Protocols.Udp, false), ("RAS", Protocols.Udp, true), ("Q.931", Protocols.Tcp, true),
        ("snmp_trap", Protocols.Udp, false),
    ];

    public override string Name => "CT";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<string>? Tables => ["raw"];

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("notrack", ONotrack, OptionArg.None),
        new("helper", OHelper),
        new("timeout", OTimeout),
        new("ctevents", OCtEvents),
        new("expevents", OExpEvents),
        new("zone-orig", OZoneOrig),
        new("zone-reply", OZoneReply),
        new("zone", OZone),
    ];

    protected override void Init(ParseContext ctx, CtData data) => data.Revision = 2;

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, CtData d)
    {
        string arg = argument ?? string.Empty;
        switch (option.Id)
        {
            case ONotrack:
                d.Flags |= CtData.FlagNotrack;
                break;
            case OHelper:
                d.Helper = XtParse.OptString(arg, size: 16);
                break;
            case OTimeout:
                d.Timeout = XtParse.OptString(arg, size: 32);
                break;
            case OCtEvents:
                d.CtEvents = ParseEvents(CtEventNames, arg);
                break;
            case OExpEvents:
                d.ExpEvents = ParseEvents(ExpEventNames, arg);
                break;
            default:
                ParseZone(d, option.Id, arg);
                break;
        }
    }

    private static void ParseZone(CtData d, int id, string arg)
    {
        if (id == OZoneOrig) d.Flags |= CtData.FlagZoneDirOrig;
        if (id == OZoneReply) d.Flags |= CtData.FlagZoneDirRepl;
        d.Zone = 0;
        if (string.Equals(arg, "mark", StringComparison.OrdinalIgnoreCase))
        {
            d.Flags |= CtData.FlagZoneMark;
            return;
        }
        if (!XtParse.StrToUL(arg, 0, ushort.MaxValue, out ulong v)) throw XtablesException.Param($"Cannot parse {arg} as a zone ID");
        d.Zone = (ushort)v;
    }

    private static uint ParseEvents(string[] names, string text)
    {
        uint mask = 0;
        foreach (string t in text.Split(','))
        {
            int i = Array.IndexOf(names, t);
            if (i < 0) throw XtablesException.Param($"Unknown event type \"{t}\"");
            mask |= 1u << i;
        }
        return mask;
    }

    private static void AppendEvents(StringBuilder sb, string label, string[] names, uint mask)
    {
        sb.Append(' ').Append(label).Append(' ');
        string sep = string.Empty;
        for (int i = 0; i < names.Length; i++)
        {
            if ((mask & (1u << i)) == 0) continue;
            sb.Append(sep).Append(names[i]);
            sep = ",";
        }
    }

    private static void AppendZone(StringBuilder sb, string label, CtData d)
    {
        sb.Append(' ').Append(label);
        int dir = d.Flags & (CtData.FlagZoneDirOrig | CtData.FlagZoneDirRepl);
        if (dir == CtData.FlagZoneDirOrig) sb.Append("-orig");
        if (dir == CtData.FlagZoneDirRepl) sb.Append("-reply");
        if ((d.Flags & CtData.FlagZoneMark) != 0) sb.Append(" mark");
        else sb.Append(' ').Append(d.Zone);
    }

    private static void Append(StringBuilder sb, CtData d, string pfx)
    {
        if ((d.Flags & CtData.FlagNotrack) != 0) sb.Append(' ').Append(pfx).Append("notrack");
        if (d.Helper.Length > 0) sb.Append(' ').Append(pfx).Append("helper ").Append(d.Helper);
        if (d.Timeout.Length > 0) sb.Append(' ').Append(pfx).Append("timeout ").Append(d.Timeout);
        if (d.CtEvents != 0) AppendEvents(sb, pfx + "ctevents", CtEventNames, d.CtEvents);
        if (d.ExpEvents != 0) AppendEvents(sb, pfx + "expevents", ExpEventNames, d.ExpEvents);
        if ((d.Flags & CtData.FlagZoneMark) != 0 || d.Zone != 0) AppendZone(sb, pfx + "zone", d);
    }

    protected override Verdict Execute(PacketContext ctx, CtData d) => Apply(ctx, d);

    /// <summary>
    /// xt_ct_target: a packet that already has conntrack state (looped back) is left alone; --notrack makes
    /// it untracked; otherwise it gets the rule's template (zone, helper name, event mask) for the connection
    /// conntrack makes next. --timeout never gets here: no timeout policy exists, so the rule is refused.
    /// </summary>
    internal static Verdict Apply(PacketContext ctx, CtData d)
    {
        Skb skb = ctx.Skb;
        if (skb.Conntrack is not null || skb.CtInfo != CtInfo.None) return Verdict.Continue;
        if ((d.Flags & CtData.FlagNotrack) != 0)
        {
            skb.CtInfo = CtInfo.Untracked;
            return Verdict.Continue;
        }
        int dirs = d.Flags & (CtData.FlagZoneDirOrig | CtData.FlagZoneDirRepl);
        skb.Conntrack = new ConnTemplate
        {
            Zone = d.Zone,
            ZoneDirections = (byte)(dirs == (CtData.FlagZoneDirOrig | CtData.FlagZoneDirRepl) ? 0 : dirs >> 1),
            ZoneFromMark = (d.Flags & CtData.FlagZoneMark) != 0,
            Helper = d.Helper.Length > 0 ? d.Helper : null,
            EventMask = d.CtEvents,
        };
        return Verdict.Continue;
    }

    protected override void Save(StringBuilder sb, CtData d, IpFamily family)
    {
        if ((d.Flags & CtData.FlagNotrackAlias) != 0) return;
        Append(sb, d, "--");
    }

    protected override void Print(StringBuilder sb, CtData d, IpFamily family, bool numeric)
    {
        if ((d.Flags & CtData.FlagNotrackAlias) != 0)
        {
            sb.Append(" NOTRACK");
            return;
        }
        sb.Append(" CT");
        Append(sb, d, string.Empty);
    }

    public override string SaveName(ExtensionData data) => (((CtData)data).Flags & CtData.FlagNotrackAlias) != 0 ? "NOTRACK" : Name;

    protected override string? CheckEntry(RuleCheckContext ctx, CtData d)
    {
        if ((d.Flags & CtData.FlagNotrack) != 0) return null;
        ushort proto = ctx.Rule.ProtocolInverted ? (ushort)0 : ctx.Rule.Protocol;
        if (d.Helper.Length > 0)
        {
            if (proto == 0) return NoEntry;
            bool found = false;
            foreach (var h in Helpers)
            {
                if (h.Name == d.Helper && h.Proto == proto && (ctx.Family == IpFamily.V4 || h.V6)) found = true;
            }
            if (!found) return NoEntry;
        }
        if (d.Timeout.Length > 0)
        {
            // No timeout policy can exist here (nfct is not available): EINVAL without a protocol, else ENOENT.
            return proto == 0 ? RulesetEditor.InvalidArgument : NoEntry;
        }
        return null;
    }

    /// <summary>strerror(ENOENT).</summary>
    internal const string NoEntry = "No such file or directory";
}
