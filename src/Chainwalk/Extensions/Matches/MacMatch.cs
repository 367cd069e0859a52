using System.Globalization;
using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m mac</c> (struct xt_mac_info).</summary>
public sealed class MacData : ExtensionData
{
    public byte[] Source = new byte[6];
    public bool Invert;

    public override ExtensionData Clone()
    {
        var c = (MacData)base.Clone();
        c.Source = (byte[])Source.Clone();
        return c;
    }
}

/// <summary><c>-m mac [!] --mac-source XX:XX:XX:XX:XX:XX</c> (libxt_mac.c, xt_mac.c: PREROUTING, INPUT, FORWARD only).</summary>
public sealed class MacMatch : XtExtension<MacData>
{
    public override string Name => "mac";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override HookMask Hooks => HookMask.Prerouting | HookMask.Input | HookMask.Forward;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("mac-source", 0, OptionArg.Required, OptFlags.Invert | OptFlags.Mandatory),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, MacData d)
    {
        d.Source = ParseMac(argument!);
        if (invert) d.Invert = true;
    }

    /// <summary>XTTYPE_ETHERMAC: six strtoul(…, 16) parts of at most two characters, separated by ':'.</summary>
    internal static byte[] ParseMac(string text)
    {
        var mac = new byte[6];
        int pos = 0;
        for (int i = 0; i < 6; i++)
        {
            int used = NumberParsing.ParseCPrefix(text.AsSpan(pos), 16, out ulong v, out _);
            int end = pos + used;
            bool last = i == 5;
            bool sepOk = last ? end == text.Length : end < text.Length && text[end] == ':';
            if (!sepOk || used > 2) throw XtablesException.Param("Invalid MAC address specified.");
            mac[i] = unchecked((byte)v);
            pos = end + 1;
        }
        return mac;
    }

    internal static void AppendMac(StringBuilder sb, byte[] mac)
    {
        for (int i = 0; i < mac.Length; i++)
        {
            if (i > 0) sb.Append(':');
            sb.Append(mac[i].ToString("x2", CultureInfo.InvariantCulture));
        }
    }

    protected override void Save(StringBuilder sb, MacData d, IpFamily family)
    {
        if (d.Invert) sb.Append(" !");
        sb.Append(" --mac-source ");
        AppendMac(sb, d.Source);
    }

    protected override void Print(StringBuilder sb, MacData d, IpFamily family, bool numeric)
    {
        sb.Append(" MAC ");
        if (d.Invert) sb.Append("! ");
        AppendMac(sb, d.Source);
    }

    /// <summary>
    /// xt_mac.c: only a packet received on an Ethernet device with its MAC header present can match, and
    /// then inversion applies; otherwise (loopback, local packets, unknown sender) it never matches, even with !.
    /// </summary>
    protected override bool Match(PacketContext ctx, MacData d)
    {
        if (ctx.Skb.SourceMac is not ulong mac || ctx.InDev is not { } dev) return false;
        if (ctx.Host.FindLink(dev) is not { } link || link.Kind == "loopback") return false;
        ulong want = 0;
        for (int i = 0; i < 6; i++) want = (want << 8) | d.Source[i];
        return (mac == want) ^ d.Invert;
    }
}
