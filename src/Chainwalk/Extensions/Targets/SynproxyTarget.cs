using System.Text;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>The XT_SYNPROXY_OPT_* flags.</summary>
[Flags]
public enum SynproxyOptions : byte
{
    None = 0,
    Mss = 0x01,
    WindowScale = 0x02,
    SackPermitted = 0x04,
    Timestamp = 0x08,
    Ecn = 0x10,
}

/// <summary>Options of <c>-j SYNPROXY</c> (struct xt_synproxy_info: the values are stored as u8 and u16).</summary>
public sealed class SynproxyData : ExtensionData
{
    public SynproxyOptions Options;
    public byte WindowScale;
    public ushort Mss;
}

/// <summary>
/// <c>-j SYNPROXY [--sack-perm] [--timestamp] [--wscale N] [--mss N] [--ecn]</c> (libxt_SYNPROXY.c,
/// xt_SYNPROXY.c). INPUT and FORWARD hooks, <c>-p tcp</c>. --wscale and --mss take 32-bit numbers that
/// the kernel struct truncates to 8 and 16 bits.
/// </summary>
public sealed class SynproxyTarget : XtExtension<SynproxyData>
{
    private const int SackPerm = 0, Timestamp = 1, Wscale = 2, MssId = 3, EcnId = 4;

    public override string Name => "SYNPROXY";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override HookMask Hooks => HookMask.Input | HookMask.Forward;

    public override ushort RequiredProtocol => Protocols.Tcp;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("sack-perm", SackPerm, OptionArg.None),
        new("timestamp", Timestamp, OptionArg.None),
        new("wscale", Wscale),
        new("mss", MssId),
        new("ecn", EcnId, OptionArg.None),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, SynproxyData d)
    {
        switch (option.Id)
        {
            case SackPerm:
                d.Options |= SynproxyOptions.SackPermitted;
                break;
            case Timestamp:
                d.Options |= SynproxyOptions.Timestamp;
                break;
            case Wscale:
                {
                    TargetParsing.IntOptionRange(argument!, 0, uint.MaxValue, Name, option.Name, out ulong v);
                    d.Options |= SynproxyOptions.WindowScale;
                    d.WindowScale = (byte)v;
                    break;
                }
            case MssId:
                {
                    TargetParsing.IntOptionRange(argument!, 0, uint.MaxValue, Name, option.Name, out ulong v);
                    d.Options |= SynproxyOptions.Mss;
                    d.Mss = (ushort)v;
                    break;
                }
            case EcnId:
                d.Options |= SynproxyOptions.Ecn;
                break;
        }
    }

    private static bool Has(SynproxyData d, SynproxyOptions o) => (d.Options & o) != 0;

    protected override void Save(StringBuilder sb, SynproxyData d, IpFamily family)
    {
        if (Has(d, SynproxyOptions.SackPermitted)) sb.Append(" --sack-perm");
        if (Has(d, SynproxyOptions.Timestamp)) sb.Append(" --timestamp");
        if (Has(d, SynproxyOptions.WindowScale)) sb.Append(" --wscale ").Append(TargetParsing.Dec(d.WindowScale));
        if (Has(d, SynproxyOptions.Mss)) sb.Append(" --mss ").Append(TargetParsing.Dec(d.Mss));
        if (Has(d, SynproxyOptions.Ecn)) sb.Append(" --ecn");
    }

    protected override void Print(StringBuilder sb, SynproxyData d, IpFamily family, bool numeric)
    {
        sb.Append(" SYNPROXY ");
        if (Has(d, SynproxyOptions.SackPermitted)) sb.Append("sack-perm ");
        if (Has(d, SynproxyOptions.Timestamp)) sb.Append("timestamp ");
        if (Has(d, SynproxyOptions.WindowScale)) sb.Append("wscale ").Append(TargetParsing.Dec(d.WindowScale)).Append(' ');
        if (Has(d, SynproxyOptions.Mss)) sb.Append("mss ").Append(TargetParsing.Dec(d.Mss)).Append(' ');
        if (Has(d, SynproxyOptions.Ecn)) sb.Append("ecn ");
    }
}
