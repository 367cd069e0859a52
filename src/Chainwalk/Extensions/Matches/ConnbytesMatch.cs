using Chainwalk.Conntrack;
using Chainwalk.Engine;
using System.Text;
using Chainwalk.Net;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Matches;

/// <summary>What <c>-m connbytes</c> counts (XT_CONNBYTES_PKTS, _BYTES, _AVGPKT).</summary>
public enum ConnbytesWhat : byte
{
    Packets = 0,
    Bytes = 1,
    AvgPacket = 2,
}

/// <summary>Which direction <c>-m connbytes</c> counts (XT_CONNBYTES_DIR_*).</summary>
public enum ConnbytesDirection : byte
{
    Original = 0,
    Reply = 1,
    Both = 2,
}

/// <summary>Options of <c>-m connbytes</c> (struct xt_connbytes_info). Inverted ranges are stored swapped (From &gt; To).</summary>
public sealed class ConnbytesData : ExtensionData
{
    public ulong From;
    public ulong To;
    public ConnbytesWhat What;
    public ConnbytesDirection Direction;
}

/// <summary><c>-m connbytes [!] --connbytes from[:to] --connbytes-dir D --connbytes-mode M</c> (libxt_connbytes.c, xt_connbytes.c).</summary>
public sealed class ConnbytesMatch : XtExtension<ConnbytesData>
{
    private const int OBytes = 0, ODir = 1, OMode = 2;

    public override string Name => "connbytes";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("connbytes", OBytes, OptionArg.Required, OptFlags.Invert | OptFlags.Mandatory),
        new("connbytes-dir", ODir, OptionArg.Required, OptFlags.Mandatory),
        new("connbytes-mode", OMode, OptionArg.Required, OptFlags.Mandatory),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, ConnbytesData d)
    {
        string arg = argument!;
        switch (option.Id)
        {
            case OBytes:
                {
                    var (min, max, n) = XtParse.UIntRange(arg, ulong.MaxValue, Name, option.Name);
                    d.From = min;
                    d.To = n == 2 ? max : ulong.MaxValue;
                    if (d.To < d.From) throw ctx.Error($"{XtParse.Dec(d.From)} should be less than {XtParse.Dec(d.To)}");
                    if (invert) (d.From, d.To) = (d.To, d.From);
                    break;
                }
            case ODir:
                d.Direction = arg switch
                {
                    "original" => ConnbytesDirection.Original,
                    "reply" => ConnbytesDirection.Reply,
                    "both" => ConnbytesDirection.Both,
                    _ => throw ctx.Error($"Unknown --connbytes-dir `{arg}'"),
                };
                break;
            case OMode:
                d.What = arg switch
                {
                    "packets" => ConnbytesWhat.Packets,
                    "bytes" => ConnbytesWhat.Bytes,
                    "avgpkt" => ConnbytesWhat.AvgPacket,
                    _ => throw ctx.Error($"Unknown --connbytes-mode `{arg}'"),
                };
                break;
        }
    }

    /// <summary>connbytes_mt: the connection's counters (none without accounting: no match).</summary>
    protected override bool Match(PacketContext ctx, ConnbytesData d)
    {
        if (!ConntrackHooks.TryGet(ctx.Skb, out ConnEntry ct, out _) || ct.Counters is not { } c) return false;
        ulong pkts = d.Direction switch
        {
            ConnbytesDirection.Original => c[0].Packets,
            ConnbytesDirection.Reply => c[1].Packets,
            _ => c[0].Packets + c[1].Packets,
        };
        ulong bytes = d.Direction switch
        {
            ConnbytesDirection.Original => c[0].Bytes,
            ConnbytesDirection.Reply => c[1].Bytes,
            _ => c[0].Bytes + c[1].Bytes,
        };
        ulong what = d.What switch
        {
            ConnbytesWhat.Packets => pkts,
            ConnbytesWhat.Bytes => bytes,
            _ => pkts == 0 ? 0 : bytes / pkts,
        };
        if (d.To >= d.From) return what <= d.To && what >= d.From;
        return what < d.To || what > d.From;
    }

    private static void FromTo(StringBuilder sb, ConnbytesData d, string prefix)
    {
        ulong from = d.From, to = d.To;
        if (from > to)
        {
            sb.Append(" !");
            (from, to) = (to, from);
        }
        sb.Append(' ').Append(prefix).Append("connbytes ").Append(XtParse.Dec(from));
        if (to != 0 && to < ulong.MaxValue) sb.Append(':').Append(XtParse.Dec(to));
    }

    private static string Mode(ConnbytesWhat w) => w switch
    {
        ConnbytesWhat.Packets => " packets",
        ConnbytesWhat.Bytes => " bytes",
        ConnbytesWhat.AvgPacket => " avgpkt",
        _ => " unknown",
    };

    private static string Dir(ConnbytesDirection dir) => dir switch
    {
        ConnbytesDirection.Original => " original",
        ConnbytesDirection.Reply => " reply",
        ConnbytesDirection.Both => " both",
        _ => " unknown",
    };

    protected override void Save(StringBuilder sb, ConnbytesData d, IpFamily family)
    {
        FromTo(sb, d, "--");
        sb.Append(" --connbytes-mode").Append(Mode(d.What)).Append(" --connbytes-dir").Append(Dir(d.Direction));
    }

    protected override void Print(StringBuilder sb, ConnbytesData d, IpFamily family, bool numeric)
    {
        FromTo(sb, d, string.Empty);
        sb.Append(" connbytes mode").Append(Mode(d.What)).Append(" connbytes direction").Append(Dir(d.Direction));
    }
}
