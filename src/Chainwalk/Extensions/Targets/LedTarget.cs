using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>Options of <c>-j LED</c> (struct xt_led_info).</summary>
public sealed class LedData : ExtensionData
{
    /// <summary>The trigger name without the "netfilter-" prefix, at most 16 bytes.</summary>
    public string TriggerId = string.Empty;

    /// <summary>Milliseconds; -1 = infinite.</summary>
    public int Delay;

    public bool AlwaysBlink;
}

/// <summary>
/// <c>-j LED</c> (libxt_LED.c). The kernel here has no xt_LED module: iptables warns as soon as it loads
/// the extension ("missing kernel module?"), still parses the options, and the rule is refused with ENOENT.
/// </summary>
public sealed class LedTarget : XtExtension<LedData>
{
    private const int OTriggerId = 0, ODelay = 1, OAlwaysBlink = 2;

    public override string Name => "LED";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("led-trigger-id", OTriggerId, OptionArg.Required, OptFlags.Mandatory),
        new("led-delay", ODelay),
        new("led-always-blink", OAlwaysBlink, OptionArg.None),
    ];

    protected override void Init(ParseContext ctx, LedData data) =>
        ctx.Warn("Warning: Extension LED revision 0 not supported, missing kernel module?");

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, LedData d)
    {
        switch (option.Id)
        {
            case OTriggerId:
                d.TriggerId = XtParse.OptString(argument!, max: 16);
                break;
            case ODelay:
                if (argument!.StartsWith("inf", StringComparison.OrdinalIgnoreCase)) d.Delay = -1;
                else if (XtParse.StrToUL(argument, 0, uint.MaxValue, out ulong v)) d.Delay = unchecked((int)(uint)v);
                else throw ctx.Error($"Delay value must be within range 0..{uint.MaxValue}");
                break;
            default:
                d.AlwaysBlink = true;
                break;
        }
    }

    private static void AppendId(StringBuilder sb, string id)
    {
        sb.Append('"');
        foreach (char c in id)
        {
            if (c is '"' or '\\') sb.Append('\\');
            sb.Append(c);
        }
        sb.Append('"');
    }

    protected override void Save(StringBuilder sb, LedData d, IpFamily family)
    {
        sb.Append(" --led-trigger-id ");
        AppendId(sb, d.TriggerId);
        if (d.Delay > 0) sb.Append(" --led-delay ").Append(d.Delay);
        else if (d.Delay == -1) sb.Append(" --led-delay inf");
        if (d.AlwaysBlink) sb.Append(" --led-always-blink");
    }

    protected override void Print(StringBuilder sb, LedData d, IpFamily family, bool numeric)
    {
        sb.Append(" led-trigger-id:");
        AppendId(sb, d.TriggerId);
        if (d.Delay == -1) sb.Append(" led-delay:inf");
        else sb.Append(" led-delay:").Append(d.Delay).Append("ms");
        if (d.AlwaysBlink) sb.Append(" led-always-blink");
    }

    protected override string? CheckEntry(RuleCheckContext ctx, LedData d) => CtTarget.NoEntry;

    /// <summary>xt_LED.c: blinks the LED trigger; the virtual host has no LEDs, so nothing visible happens. The packet continues.</summary>
    protected override Verdict Execute(PacketContext ctx, LedData data) => Verdict.Continue;
}
