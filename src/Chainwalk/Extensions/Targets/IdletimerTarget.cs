using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>IDLETIMER revision 1 (struct idletimer_tg_info_v1).</summary>
public sealed class IdletimerData : ExtensionData
{
    /// <summary>Seconds.</summary>
    public uint Timeout;

    /// <summary>The timer's sysfs name, at most 27 bytes.</summary>
    public string Label = string.Empty;

    /// <summary>XT_IDLETIMER_ALARM (--alarm) instead of a plain timer.</summary>
    public bool Alarm;
}

/// <summary>
/// <c>-j IDLETIMER --timeout SECONDS --label NAME [--alarm]</c> (libxt_IDLETIMER.c, xt_IDLETIMER.c). The
/// kernel refuses a zero timeout, one of INT_MAX/1000 seconds or more, and an empty label.
/// </summary>
public sealed class IdletimerTarget : XtExtension<IdletimerData>
{
    private const int OTimeout = 0, OLabel = 1, OAlarm = 2;

    public override string Name => "IDLETIMER";

    public override ExtensionKind Kind => ExtensionKind.Target;


    /// <summary>Its checkentry looks beyond the rule: rules naming the same timer label must agree.</summary>

    public override bool ChecksSharedObjects => true;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("timeout", OTimeout, OptionArg.Required, OptFlags.Mandatory),
        new("label", OLabel, OptionArg.Required, OptFlags.Mandatory),
        new("alarm", OAlarm, OptionArg.None),
    ];

    protected override void Init(ParseContext ctx, IdletimerData data) => data.Revision = 1;

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, IdletimerData d)
    {
        switch (option.Id)
        {
            case OTimeout:
                d.Timeout = (uint)XtParse.OptUInt(argument!, 0, uint.MaxValue, Name, option.Name);
                break;
            case OLabel:
                d.Label = XtParse.OptString(argument!, size: 28);
                break;
            default:
                d.Alarm = true;
                break;
        }
    }

    protected override void Save(StringBuilder sb, IdletimerData d, IpFamily family)
    {
        sb.Append(" --timeout ").Append(d.Timeout).Append(" --label ").Append(d.Label);
        if (d.Alarm) sb.Append(" --alarm");
    }

    protected override void Print(StringBuilder sb, IdletimerData d, IpFamily family, bool numeric)
    {
        sb.Append(" timeout:").Append(d.Timeout).Append(" label:").Append(d.Label);
        if (d.Alarm) sb.Append(" alarm");
    }

    protected override string? CheckEntry(RuleCheckContext ctx, IdletimerData d)
    {
        if (d.Timeout == 0 || d.Timeout >= int.MaxValue / 1000) return RulesetEditor.InvalidArgument;
        if (d.Label.Length == 0) return RulesetEditor.InvalidArgument;
        // Rules with the same label share one timer: its type is that of the rule that created it.
        foreach (Rule r in ctx.TableRules)
        {
            if (r.Target is not { Extension: IdletimerTarget, Data: IdletimerData other } || other.Label != d.Label) continue;
            if (ReferenceEquals(r, ctx.Rule)) break;
            if (other.Alarm != d.Alarm) return RulesetEditor.InvalidArgument;
            break;
        }
        return null;
    }

    /// <summary>The timer of one label (xt_IDLETIMER.c idletimer_tg): when it expires, as /sys/class/xt_idletimer/timers/LABEL shows it.</summary>
    public sealed class IdleTimer
    {
        public double Expires { get; set; }

        public uint Timeout { get; set; }
    }

    /// <summary>xt_IDLETIMER.c idletimer_tg: every packet restarts the label's timer at --timeout seconds. The packet continues.</summary>
    protected override Verdict Execute(PacketContext ctx, IdletimerData data)
    {
        IdleTimer t = ctx.Named("idletimer", data.Label, () => new IdleTimer());
        t.Timeout = data.Timeout;
        t.Expires = ctx.Now + data.Timeout;
        return Verdict.Continue;
    }
}
