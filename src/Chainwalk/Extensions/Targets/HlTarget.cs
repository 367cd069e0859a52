namespace Chainwalk.Extensions.Targets;

/// <summary><c>-j HL --hl-set|--hl-inc|--hl-dec N</c> (IPv6, libip6t_HL.c). mangle table.</summary>
public sealed class HlTarget : HopLimitTargetBase
{
    public override string Name => "HL";

    public override FamilyMask Families => FamilyMask.V6;

    protected override string Prefix => "hl";
}
