using System.Reflection;
using System.Runtime.CompilerServices;

namespace Chainwalk.Bench;

/// <summary>
/// Diagnostics: the managed bytes reachable from one object, by type (reflection walk of the object graph; each object
/// counted once; sizes from the runtime's method table). Objects reached through <paramref name="stopAt"/> types are not
/// entered (shared singletons such as extensions).
/// </summary>
public static class HeapWalk
{
    public static Dictionary<string, (long, long)>? Strings;

    /// <summary>When set, the walk counts the string objects of each content (duplicates: the same text held twice).</summary>
    public static Dictionary<string, int>? StringContents;

    public static Dictionary<string, (long Count, long Bytes)> ByType(object root, Func<Type, bool> stopAt)
    {
        var seen = new HashSet<object>(ReferenceEqualityComparer.Instance);
        var result = new Dictionary<string, (long, long)>(StringComparer.Ordinal);
        var stack = new Stack<object>();
        stack.Push(root);
        seen.Add(root);
        while (stack.Count > 0)
        {
            object o = stack.Pop();
            Type t = o.GetType();
            long size = SizeOf(o);
            string name = Name(t);
            result[name] = result.TryGetValue(name, out var v) ? (v.Item1 + 1, v.Item2 + size) : (1, size);
            if (o is string str0 && StringContents is not null) StringContents[str0] = StringContents.TryGetValue(str0, out int sc) ? sc + 1 : 1;
            if (o is string str) { if (Strings is not null) { string k = str.Length > 6 ? str[..6] : str; Strings[k] = Strings.TryGetValue(k, out var sv) ? (sv.Item1 + 1, sv.Item2 + size) : (1, size); } continue; }
            if (o is Array a)
            {
                Type et = t.GetElementType()!;
                if (et.IsValueType && !ContainsRefs(et)) continue;
                foreach (object? e in a) Visit(e);
                continue;
            }
            for (Type? tt = t; tt is not null; tt = tt.BaseType)
                foreach (FieldInfo f in tt.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                {
                    if (f.FieldType.IsPrimitive || f.FieldType.IsEnum || f.FieldType.IsPointer) continue;
                    if (f.FieldType.IsValueType && !ContainsRefs(f.FieldType)) continue;
                    object? val = f.GetValue(o);
                    if (val is null) continue;
                    if (f.FieldType.IsValueType) { WalkStruct(val); continue; }
                    Visit(val);
                }
        }
        return result;

        void WalkStruct(object boxed)
        {
            for (Type? tt = boxed.GetType(); tt is not null && tt != typeof(ValueType); tt = tt.BaseType)
                foreach (FieldInfo f in tt.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                {
                    if (f.FieldType.IsPrimitive || f.FieldType.IsEnum) continue;
                    object? val = f.GetValue(boxed);
                    if (val is null) continue;
                    if (f.FieldType.IsValueType) WalkStruct(val); else Visit(val);
                }
        }

        void Visit(object? e)
        {
            if (e is null) return;
            if (e.GetType().IsValueType) { WalkStruct(e); return; }
            if (stopAt(e.GetType()) || e is Type || e is Delegate || e is Assembly || e is MemberInfo) return;
            if (seen.Add(e)) stack.Push(e);
        }
    }

    private static bool ContainsRefs(Type t) => (bool)typeof(RuntimeHelpers).GetMethod(nameof(RuntimeHelpers.IsReferenceOrContainsReferences))!.MakeGenericMethod(t).Invoke(null, null)!;

    private static string Name(Type t) => t.IsGenericType ? t.Name + "<" + string.Join(",", t.GetGenericArguments().Select(Name)) + ">" : t.IsArray ? Name(t.GetElementType()!) + "[]" : t.Name;

    private static unsafe long SizeOf(object o)
    {
        nint mt = o.GetType().TypeHandle.Value;
        uint baseSize = *(uint*)(mt + 4);
        ushort comp = (o.GetType().IsArray || o is string) ? *(ushort*)mt : (ushort)0;
        long n = o is Array a ? a.Length : o is string s ? s.Length : 0;
        long size = baseSize + comp * n;
        return (size + 7) & ~7L;
    }
}
