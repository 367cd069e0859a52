using System.Reflection;
using Chainwalk.Net;

namespace Chainwalk.Extensions;

/// <summary>
/// All extensions Chainwalk knows, found by reflection: adding <c>-m foo</c> is adding one class.
/// Lookup is by name, kind and family, as libxtables' xtables_find_match/xtables_find_target.
/// </summary>
public static class ExtensionRegistry
{
    private static readonly Lazy<List<XtExtension>> _all = new(Discover);

    public static IReadOnlyList<XtExtension> All => _all.Value;

    private static List<XtExtension> Discover()
    {
        var list = new List<XtExtension>();
        foreach (Type t in typeof(XtExtension).Assembly.GetTypes())
        {
            if (t.IsAbstract || !typeof(XtExtension).IsAssignableFrom(t)) continue;
            if (t.GetConstructor(BindingFlags.Public | BindingFlags.Instance, Type.EmptyTypes) is null) continue;
            list.Add((XtExtension)Activator.CreateInstance(t)!);
        }
        list.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return list;
    }

    public static XtExtension? Find(string name, ExtensionKind kind, IpFamily family)
    {
        FamilyMask want = family == IpFamily.V4 ? FamilyMask.V4 : FamilyMask.V6;
        foreach (XtExtension e in All)
        {
            if (e.Kind == kind && (e.Families & want) != 0 && e.Name == name) return e;
        }
        return null;
    }

    public static XtExtension? FindMatch(string name, IpFamily family) => Find(name, ExtensionKind.Match, family);

    public static XtExtension? FindTarget(string name, IpFamily family) => Find(name, ExtensionKind.Target, family);
}
